package herald

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"

	"github.com/heraldhq/herald/plugin"
	"github.com/heraldhq/herald/plugin/heraldv1"
)

// Client is a connection to one Herald, made by Launch or Attach. It is safe
// for concurrent use. Close it when done.
type Client struct {
	pc  *goplugin.Client
	rpc heraldv1.NotificationServiceClient

	// pid is the launched child's PID, 0 when attached.
	pid int

	closed    atomic.Bool
	closeOnce sync.Once
	// beforeKill and afterKill are the mode's own steps around go-plugin's
	// Kill; either may be nil.
	beforeKill, afterKill func()
}

// dispense starts (or reattaches) pc and returns the service client.
func dispense(pc *goplugin.Client) (heraldv1.NotificationServiceClient, error) {
	proto, err := pc.Client()
	if err != nil {
		return nil, err
	}
	raw, err := proto.Dispense(plugin.PluginName)
	if err != nil {
		return nil, err
	}
	svc, ok := raw.(heraldv1.NotificationServiceClient)
	if !ok {
		return nil, fmt.Errorf("plugin %q dispensed %T", plugin.PluginName, raw)
	}
	return svc, nil
}

// Close ends the Client. For a Client made by Launch it shuts Herald down
// (gracefully, then with SIGKILL after 2 seconds) and waits for it to exit;
// for one made by Attach it only disconnects and never stops the sidecar.
// Calls in flight fail with ErrClosed. Close is idempotent and returns nil.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		if c.beforeKill != nil {
			c.beforeKill()
		}
		c.pc.Kill()
		if c.afterKill != nil {
			c.afterKill()
		}
	})
	return nil
}

// Exited reports whether Herald went away: for Launch, the child process has
// exited; for Attach, the sidecar's socket stopped accepting connections at
// some point (calls may succeed again if a new sidecar took its place).
func (c *Client) Exited() bool { return c.pc.Exited() }

// PID returns the process ID of the Herald that Launch started, or 0 for a
// Client made by Attach (a sidecar's PID means nothing across containers).
func (c *Client) PID() int { return c.pid }

// call runs one RPC and turns its error into an *Error, or ErrClosed.
func (c *Client) call(op string, rpc func() error) error {
	if c.closed.Load() {
		return fmt.Errorf("herald: %s: %w", op, ErrClosed)
	}
	err := rpc()
	if err == nil {
		return nil
	}
	if c.closed.Load() {
		return fmt.Errorf("herald: %s: %w", op, ErrClosed)
	}
	var he *Error
	if errors.As(err, &he) && he.Op == "" {
		he.Op = op
		return he
	}
	return fromRPC(op, err)
}

// CreateNotification stores one notification and pushes it to the user's
// open connections. It returns once the notification is durable.
func (c *Client) CreateNotification(ctx context.Context, n NewNotification) (Notification, error) {
	var out Notification
	err := c.call("CreateNotification", func() error {
		req, err := n.toProto("notification")
		if err != nil {
			return err
		}
		resp, err := c.rpc.CreateNotification(ctx, &heraldv1.CreateNotificationRequest{Notification: req})
		if err != nil {
			return err
		}
		out = fromProto(resp.GetNotification())
		return nil
	})
	return out, err
}

// CreateNotifications stores 1 to 1000 notifications in one durable commit,
// all or none, and returns them in the order given.
func (c *Client) CreateNotifications(ctx context.Context, ns []NewNotification) ([]Notification, error) {
	var out []Notification
	err := c.call("CreateNotifications", func() error {
		reqs := make([]*heraldv1.NewNotification, len(ns))
		for i := range ns {
			var err error
			if reqs[i], err = ns[i].toProto(fmt.Sprintf("notifications[%d]", i)); err != nil {
				return err
			}
		}
		resp, err := c.rpc.CreateNotifications(ctx, &heraldv1.CreateNotificationsRequest{Notifications: reqs})
		if err != nil {
			return err
		}
		out = fromProtos(resp.GetNotifications())
		return nil
	})
	return out, err
}

// ListNotifications returns one page of a user's notifications, newest first.
func (c *Client) ListNotifications(ctx context.Context, opts ListOptions) (Page, error) {
	var out Page
	err := c.call("ListNotifications", func() error {
		if err := checkStrings("user_id", opts.UserID, "before", opts.Before); err != nil {
			return err
		}
		resp, err := c.rpc.ListNotifications(ctx, &heraldv1.ListNotificationsRequest{
			UserId:     opts.UserID,
			UnreadOnly: opts.UnreadOnly,
			Before:     opts.Before,
			// Out-of-range limits stay out of range for Herald to refuse.
			Limit: int32(min(max(opts.Limit, -1), math.MaxInt32)),
		})
		if err != nil {
			return err
		}
		out = Page{Notifications: fromProtos(resp.GetNotifications()), Next: resp.GetNext()}
		return nil
	})
	return out, err
}

// UnreadCount returns how many unread notifications a user has.
func (c *Client) UnreadCount(ctx context.Context, userID string) (int64, error) {
	var out int64
	err := c.call("UnreadCount", func() error {
		if err := checkStrings("user_id", userID); err != nil {
			return err
		}
		resp, err := c.rpc.UnreadCount(ctx, &heraldv1.UnreadCountRequest{UserId: userID})
		out = resp.GetUnreadCount()
		return err
	})
	return out, err
}

// MarkRead marks 1 to 1000 notifications of a user read; IDs already read
// change nothing. An ID that does not exist for the user fails the call with
// ErrNotFound and changes nothing. Every tab of the user is told.
func (c *Client) MarkRead(ctx context.Context, userID string, ids []string) (MarkReadResult, error) {
	var out MarkReadResult
	err := c.call("MarkRead", func() error {
		if err := checkUserAndIDs(userID, ids); err != nil {
			return err
		}
		resp, err := c.rpc.MarkRead(ctx, &heraldv1.MarkReadRequest{UserId: userID, Ids: ids})
		if err != nil {
			return err
		}
		out = MarkReadResult{Changed: resp.GetChanged(), UnreadCount: resp.GetUnreadCount()}
		return nil
	})
	return out, err
}

// MarkAllRead marks every notification of a user read and returns how many
// were unread.
func (c *Client) MarkAllRead(ctx context.Context, userID string) (int64, error) {
	var out int64
	err := c.call("MarkAllRead", func() error {
		if err := checkStrings("user_id", userID); err != nil {
			return err
		}
		resp, err := c.rpc.MarkAllRead(ctx, &heraldv1.MarkAllReadRequest{UserId: userID})
		out = resp.GetChanged()
		return err
	})
	return out, err
}

// DeleteNotifications deletes 1 to 1000 notifications of a user and returns
// the user's unread count after. An ID that does not exist for the user fails
// the call with ErrNotFound and deletes nothing.
func (c *Client) DeleteNotifications(ctx context.Context, userID string, ids []string) (int64, error) {
	var out int64
	err := c.call("DeleteNotifications", func() error {
		if err := checkUserAndIDs(userID, ids); err != nil {
			return err
		}
		resp, err := c.rpc.DeleteNotifications(ctx, &heraldv1.DeleteNotificationsRequest{UserId: userID, Ids: ids})
		out = resp.GetUnreadCount()
		return err
	})
	return out, err
}

// IssueConnectToken returns a token for the user's browser, valid for ttl
// (rounded up to whole seconds, at most 24 hours; 0 means 5 minutes). It
// fails with ErrUnimplemented when Herald has no signing key.
func (c *Client) IssueConnectToken(
	ctx context.Context,
	userID string,
	ttl time.Duration,
) (ConnectToken, error) {
	var out ConnectToken
	err := c.call("IssueConnectToken", func() error {
		if err := checkStrings("user_id", userID); err != nil {
			return err
		}
		if ttl < 0 {
			return &Error{Code: codes.InvalidArgument, Message: fmt.Sprintf("ttl_seconds: ttl %v is negative", ttl)}
		}
		seconds := int64((ttl + time.Second - 1) / time.Second)
		resp, err := c.rpc.IssueConnectToken(ctx, &heraldv1.IssueConnectTokenRequest{
			UserId:     userID,
			TtlSeconds: seconds,
		})
		if err != nil {
			return err
		}
		out = ConnectToken{Token: resp.GetToken(), ExpiresAt: time.UnixMilli(resp.GetExpiresAtUnixMs()).UTC()}
		return nil
	})
	return out, err
}

// Presence returns how many live connections a user has, per replica.
func (c *Client) Presence(ctx context.Context, userID string) (Presence, error) {
	var out Presence
	err := c.call("Presence", func() error {
		if err := checkStrings("user_id", userID); err != nil {
			return err
		}
		resp, err := c.rpc.Presence(ctx, &heraldv1.PresenceRequest{UserId: userID})
		if err != nil {
			return err
		}
		out = Presence{Connections: resp.GetConnections(), Replicas: resp.GetReplicas()}
		return nil
	})
	return out, err
}

// checkUserAndIDs checks the encodability of MarkRead's and
// DeleteNotifications' strings.
func checkUserAndIDs(userID string, ids []string) error {
	if err := checkStrings("user_id", userID); err != nil {
		return err
	}
	for i, id := range ids {
		if err := checkStrings(fmt.Sprintf("ids[%d]", i), id); err != nil {
			return err
		}
	}
	return nil
}

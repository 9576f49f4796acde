package service

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/heraldhq/herald/plugin/heraldv1"
)

// fakeIssuer records the TTL it was asked for.
type fakeIssuer struct{ ttl chan time.Duration }

func (f fakeIssuer) Issue(userID string, ttl time.Duration) (string, time.Time, error) {
	select {
	case f.ttl <- ttl:
	default:
	}
	return "token-for-" + userID, time.UnixMilli(1_700_000_000_000), nil
}

func fakePresence(_ context.Context, userID string) (map[string]int64, error) {
	return map[string]int64{"node-a": 2, "node-b": 1}, nil
}

const validID = "01JH7Z0000000000000000000A"

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = validID
	}
	return out
}

func notes(n int, edit func(i int, n *heraldv1.NewNotification)) []*heraldv1.NewNotification {
	out := make([]*heraldv1.NewNotification, n)
	for i := range out {
		out[i] = newNote("batch-user", fmt.Sprintf("n%d", i))
		if edit != nil {
			edit(i, out[i])
		}
	}
	return out
}

func create(edit func(n *heraldv1.NewNotification)) func(context.Context, heraldv1.NotificationServiceClient) error {
	return func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
		n := newNote("v-user", "title")
		edit(n)
		_, err := c.CreateNotification(ctx, &heraldv1.CreateNotificationRequest{Notification: n})
		return err
	}
}

// TestValidation checks every argument rule through the real gRPC path: the
// code, and that the message names the field.
func TestValidation(t *testing.T) {
	h := newHarness(t, Options{Tokens: fakeIssuer{}, Presence: fakePresence})
	long := func(n int) string { return strings.Repeat("x", n) }
	type call = func(context.Context, heraldv1.NotificationServiceClient) error
	cases := []struct {
		name  string
		call  call
		code  codes.Code
		field string // the message must start with it
	}{
		{"create without notification", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.CreateNotification(ctx, &heraldv1.CreateNotificationRequest{})
			return err
		}, codes.InvalidArgument, "notification:"},
		{"empty user id", create(func(n *heraldv1.NewNotification) { n.UserId = "" }),
			codes.InvalidArgument, "notification.user_id:"},
		{"user id over 128 bytes", create(func(n *heraldv1.NewNotification) { n.UserId = long(129) }),
			codes.InvalidArgument, "notification.user_id:"},
		{"user id of 128 bytes", create(func(n *heraldv1.NewNotification) { n.UserId = long(128) }),
			codes.OK, ""},
		{"empty type", create(func(n *heraldv1.NewNotification) { n.Type = "" }),
			codes.InvalidArgument, "notification.type:"},
		{"type over 128 bytes", create(func(n *heraldv1.NewNotification) { n.Type = long(129) }),
			codes.InvalidArgument, "notification.type:"},
		{"empty title", create(func(n *heraldv1.NewNotification) { n.Title = "" }),
			codes.InvalidArgument, "notification.title:"},
		{"title over 1 KiB", create(func(n *heraldv1.NewNotification) { n.Title = long(1025) }),
			codes.InvalidArgument, "notification.title:"},
		{"title of 1 KiB", create(func(n *heraldv1.NewNotification) { n.Title = long(1024) }),
			codes.OK, ""},
		{"body over 16 KiB", create(func(n *heraldv1.NewNotification) { n.Body = long(16<<10 + 1) }),
			codes.InvalidArgument, "notification.body:"},
		{"body of 16 KiB", create(func(n *heraldv1.NewNotification) { n.Body = long(16 << 10) }),
			codes.OK, ""},
		{"link over 2 KiB", create(func(n *heraldv1.NewNotification) { n.Link = long(2<<10 + 1) }),
			codes.InvalidArgument, "notification.link:"},
		{"data not JSON", create(func(n *heraldv1.NewNotification) { n.DataJson = "{oops" }),
			codes.InvalidArgument, "notification.data_json:"},
		{"data a JSON array", create(func(n *heraldv1.NewNotification) { n.DataJson = "[1,2]" }),
			codes.InvalidArgument, "notification.data_json:"},
		{"data null", create(func(n *heraldv1.NewNotification) { n.DataJson = "null" }),
			codes.InvalidArgument, "notification.data_json:"},
		{"data over 32 KiB", create(func(n *heraldv1.NewNotification) {
			n.DataJson = `{"k":"` + long(32<<10) + `"}`
		}), codes.InvalidArgument, "notification.data_json:"},
		{"data an object", create(func(n *heraldv1.NewNotification) { n.DataJson = `{"task":17}` }),
			codes.OK, ""},
		{"idempotency key over 256 bytes", create(func(n *heraldv1.NewNotification) {
			n.IdempotencyKey = long(257)
		}), codes.InvalidArgument, "notification.idempotency_key:"},

		{"empty batch", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.CreateNotifications(ctx, &heraldv1.CreateNotificationsRequest{})
			return err
		}, codes.InvalidArgument, "notifications:"},
		{"batch over 1000", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.CreateNotifications(ctx, &heraldv1.CreateNotificationsRequest{Notifications: notes(1001, nil)})
			return err
		}, codes.InvalidArgument, "notifications:"},
		{"batch item with empty title", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.CreateNotifications(ctx, &heraldv1.CreateNotificationsRequest{
				Notifications: notes(5, func(i int, n *heraldv1.NewNotification) {
					if i == 3 {
						n.Title = ""
					}
				}),
			})
			return err
		}, codes.InvalidArgument, "notifications[3].title:"},
		{"batch item with bad data", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.CreateNotifications(ctx, &heraldv1.CreateNotificationsRequest{
				Notifications: notes(2, func(i int, n *heraldv1.NewNotification) {
					if i == 1 {
						n.DataJson = "7"
					}
				}),
			})
			return err
		}, codes.InvalidArgument, "notifications[1].data_json:"},

		{"list with empty user", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.ListNotifications(ctx, &heraldv1.ListNotificationsRequest{})
			return err
		}, codes.InvalidArgument, "user_id:"},
		{"list limit -1", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.ListNotifications(ctx, &heraldv1.ListNotificationsRequest{UserId: "u", Limit: -1})
			return err
		}, codes.InvalidArgument, "limit:"},
		{"list limit 101", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.ListNotifications(ctx, &heraldv1.ListNotificationsRequest{UserId: "u", Limit: 101})
			return err
		}, codes.InvalidArgument, "limit:"},
		{"list limit 100", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.ListNotifications(ctx, &heraldv1.ListNotificationsRequest{UserId: "u", Limit: 100})
			return err
		}, codes.OK, ""},
		{"list with malformed cursor", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.ListNotifications(ctx, &heraldv1.ListNotificationsRequest{UserId: "u", Before: "nope"})
			return err
		}, codes.InvalidArgument, "before:"},

		{"unread count of empty user", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.UnreadCount(ctx, &heraldv1.UnreadCountRequest{})
			return err
		}, codes.InvalidArgument, "user_id:"},
		{"unread count of long user", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.UnreadCount(ctx, &heraldv1.UnreadCountRequest{UserId: long(129)})
			return err
		}, codes.InvalidArgument, "user_id:"},

		{"mark read without ids", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.MarkRead(ctx, &heraldv1.MarkReadRequest{UserId: "u"})
			return err
		}, codes.InvalidArgument, "ids:"},
		{"mark read of 1001 ids", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.MarkRead(ctx, &heraldv1.MarkReadRequest{UserId: "u", Ids: ids(1001)})
			return err
		}, codes.InvalidArgument, "ids:"},
		{"mark read of a malformed id", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.MarkRead(ctx, &heraldv1.MarkReadRequest{UserId: "u", Ids: []string{validID, "42"}})
			return err
		}, codes.InvalidArgument, "ids[1]:"},
		{"mark read of empty user", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.MarkRead(ctx, &heraldv1.MarkReadRequest{Ids: ids(1)})
			return err
		}, codes.InvalidArgument, "user_id:"},
		{"mark all read of empty user", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.MarkAllRead(ctx, &heraldv1.MarkAllReadRequest{})
			return err
		}, codes.InvalidArgument, "user_id:"},
		{"delete without ids", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.DeleteNotifications(ctx, &heraldv1.DeleteNotificationsRequest{UserId: "u"})
			return err
		}, codes.InvalidArgument, "ids:"},
		{"delete of a malformed id", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.DeleteNotifications(ctx, &heraldv1.DeleteNotificationsRequest{UserId: "u", Ids: []string{""}})
			return err
		}, codes.InvalidArgument, "ids[0]:"},

		{"token for empty user", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.IssueConnectToken(ctx, &heraldv1.IssueConnectTokenRequest{})
			return err
		}, codes.InvalidArgument, "user_id:"},
		{"token ttl -1", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.IssueConnectToken(ctx, &heraldv1.IssueConnectTokenRequest{UserId: "u", TtlSeconds: -1})
			return err
		}, codes.InvalidArgument, "ttl_seconds:"},
		{"token ttl over a day", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.IssueConnectToken(ctx, &heraldv1.IssueConnectTokenRequest{UserId: "u", TtlSeconds: 86401})
			return err
		}, codes.InvalidArgument, "ttl_seconds:"},
		{"token ttl of a day", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.IssueConnectToken(ctx, &heraldv1.IssueConnectTokenRequest{UserId: "u", TtlSeconds: 86400})
			return err
		}, codes.OK, ""},
		{"presence of empty user", func(ctx context.Context, c heraldv1.NotificationServiceClient) error {
			_, err := c.Presence(ctx, &heraldv1.PresenceRequest{})
			return err
		}, codes.InvalidArgument, "user_id:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(testCtx(t), h.client)
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("code %v (%q), want %v", st.Code(), st.Message(), tc.code)
			}
			if !strings.HasPrefix(st.Message(), tc.field) {
				t.Fatalf("message %q does not start with the field %q", st.Message(), tc.field)
			}
		})
	}

	// Nothing invalid reached the store: v-user has only the three valid
	// creates, and the refused batches stored nothing.
	if n := h.unread(t, "v-user"); n != 3 {
		t.Errorf("v-user has %d notifications, want the 3 valid ones", n)
	}
	if n := h.unread(t, "batch-user"); n != 0 {
		t.Errorf("batch-user has %d notifications, want 0", n)
	}
}

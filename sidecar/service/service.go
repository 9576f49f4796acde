// Package service implements herald.v1.NotificationService on top of the
// store: it validates every request with the rules of PROTOCOL.md before it
// touches the store, converts between the proto messages and the domain
// types, and turns errors into gRPC statuses. It is the only place where
// errors become gRPC statuses.
//
// Pushing to sockets is not done here: the store hands each commit's events
// to the gateway before a write call returns, so a notification is on its
// way to the user's sockets before the host hears "ok".
package service

import (
	"context"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/store"
)

// Limits of the RPC arguments that are not notification fields.
const (
	// DefaultLimit is the page size of ListNotifications when limit is 0.
	DefaultLimit = 50
	// MaxLimit is the largest page size of ListNotifications.
	MaxLimit = 100
	// DefaultTokenTTL is the lifetime of a connect token when ttl_seconds is 0.
	DefaultTokenTTL = 300 * time.Second
	// MaxTokenTTL is the longest lifetime of a connect token.
	MaxTokenTTL = 24 * time.Hour
)

// TokenIssuer issues the short-lived tokens a browser opens /ws with.
// Implementations are safe for concurrent use.
type TokenIssuer interface {
	// Issue returns a token for userID valid for ttl and its expiry time.
	Issue(userID string, ttl time.Duration) (token string, expires time.Time, err error)
}

// PresenceFunc returns a user's live connection count per replica node ID.
type PresenceFunc func(ctx context.Context, userID string) (map[string]int64, error)

// Options configures a Service.
type Options struct {
	// Store keeps the notifications. Required.
	Store *store.Store
	// Tokens issues connect tokens. Nil makes IssueConnectToken answer
	// Unimplemented (a Herald that only holds a public key cannot sign).
	Tokens TokenIssuer
	// Presence answers Presence. Nil makes Presence answer Unimplemented.
	Presence PresenceFunc
	// Logger receives errors the caller cannot act on. Default: a null logger.
	Logger hclog.Logger
}

// Service implements heraldv1.NotificationServiceServer. It is safe for
// concurrent use; it holds no state of its own besides its options.
type Service struct {
	heraldv1.UnimplementedNotificationServiceServer

	store    *store.Store
	tokens   TokenIssuer
	presence PresenceFunc
	log      hclog.Logger
}

var _ heraldv1.NotificationServiceServer = (*Service)(nil)

// New returns a Service over opts.Store. It panics when opts.Store is nil,
// which is a programming error.
func New(opts Options) *Service {
	if opts.Store == nil {
		panic("service: Options.Store is nil")
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	return &Service{
		store:    opts.Store,
		tokens:   opts.Tokens,
		presence: opts.Presence,
		log:      opts.Logger,
	}
}

// CreateNotification stores one notification durably and returns it.
func (s *Service) CreateNotification(
	ctx context.Context,
	req *heraldv1.CreateNotificationRequest,
) (*heraldv1.CreateNotificationResponse, error) {
	if req.GetNotification() == nil {
		return nil, invalid(&notification.FieldError{Field: "notification", Problem: "must be set"})
	}
	d := draftFromProto(req.GetNotification())
	if err := d.Validate(); err != nil {
		return nil, invalid(notification.WithPrefix("notification", err))
	}
	created, err := s.store.Create(ctx, []notification.Draft{d})
	if err != nil {
		return nil, s.fromStore(ctx, "create notification", err)
	}
	return &heraldv1.CreateNotificationResponse{Notification: toProto(&created[0])}, nil
}

// CreateNotifications stores 1 to notification.MaxBatch notifications in one
// durable commit, all or none, and returns them in request order.
func (s *Service) CreateNotifications(
	ctx context.Context,
	req *heraldv1.CreateNotificationsRequest,
) (*heraldv1.CreateNotificationsResponse, error) {
	items := req.GetNotifications()
	if err := checkBatch("notifications", len(items)); err != nil {
		return nil, invalid(err)
	}
	drafts := make([]notification.Draft, len(items))
	for i, item := range items {
		if item == nil {
			return nil, invalid(&notification.FieldError{Field: indexed("notifications", i), Problem: "must be set"})
		}
		drafts[i] = draftFromProto(item)
		if err := drafts[i].Validate(); err != nil {
			return nil, invalid(notification.WithPrefix(indexed("notifications", i), err))
		}
	}
	created, err := s.store.Create(ctx, drafts)
	if err != nil {
		return nil, s.fromStore(ctx, "create notifications", err)
	}
	resp := &heraldv1.CreateNotificationsResponse{Notifications: make([]*heraldv1.Notification, len(created))}
	for i := range created {
		resp.Notifications[i] = toProto(&created[i])
	}
	return resp, nil
}

// ListNotifications returns one page of a user's notifications, newest first.
func (s *Service) ListNotifications(
	ctx context.Context,
	req *heraldv1.ListNotificationsRequest,
) (*heraldv1.ListNotificationsResponse, error) {
	if err := notification.ValidateUserID(req.GetUserId()); err != nil {
		return nil, invalid(err)
	}
	if req.GetBefore() != "" {
		if err := notification.ValidateID("before", req.GetBefore()); err != nil {
			return nil, invalid(err)
		}
	}
	limit, err := pageLimit(req.GetLimit())
	if err != nil {
		return nil, invalid(err)
	}
	page, err := s.store.List(store.ListQuery{
		UserID:     req.GetUserId(),
		UnreadOnly: req.GetUnreadOnly(),
		Before:     req.GetBefore(),
		Limit:      limit,
	})
	if err != nil {
		return nil, s.fromStore(ctx, "list notifications", err)
	}
	resp := &heraldv1.ListNotificationsResponse{
		Notifications: make([]*heraldv1.Notification, len(page.Notifications)),
		Next:          page.Next,
	}
	for i := range page.Notifications {
		resp.Notifications[i] = toProto(&page.Notifications[i])
	}
	return resp, nil
}

// UnreadCount returns a user's unread count.
func (s *Service) UnreadCount(
	ctx context.Context,
	req *heraldv1.UnreadCountRequest,
) (*heraldv1.UnreadCountResponse, error) {
	if err := notification.ValidateUserID(req.GetUserId()); err != nil {
		return nil, invalid(err)
	}
	n, err := s.store.UnreadCount(req.GetUserId())
	if err != nil {
		return nil, s.fromStore(ctx, "unread count", err)
	}
	return &heraldv1.UnreadCountResponse{UnreadCount: int64(n)}, nil
}

// MarkRead marks notifications of a user read. An id that does not exist for
// the user answers NotFound and changes nothing.
func (s *Service) MarkRead(
	ctx context.Context,
	req *heraldv1.MarkReadRequest,
) (*heraldv1.MarkReadResponse, error) {
	if err := checkUserAndIDs(req.GetUserId(), req.GetIds()); err != nil {
		return nil, invalid(err)
	}
	changed, unread, err := s.store.MarkRead(ctx, req.GetUserId(), req.GetIds())
	if err != nil {
		return nil, s.fromStore(ctx, "mark read", err)
	}
	return &heraldv1.MarkReadResponse{Changed: changed, UnreadCount: int64(unread)}, nil
}

// MarkAllRead marks every notification of a user read.
func (s *Service) MarkAllRead(
	ctx context.Context,
	req *heraldv1.MarkAllReadRequest,
) (*heraldv1.MarkAllReadResponse, error) {
	if err := notification.ValidateUserID(req.GetUserId()); err != nil {
		return nil, invalid(err)
	}
	changed, err := s.store.MarkAllRead(ctx, req.GetUserId())
	if err != nil {
		return nil, s.fromStore(ctx, "mark all read", err)
	}
	return &heraldv1.MarkAllReadResponse{Changed: int64(changed)}, nil
}

// DeleteNotifications deletes notifications of a user. An id that does not
// exist for the user answers NotFound and deletes nothing.
func (s *Service) DeleteNotifications(
	ctx context.Context,
	req *heraldv1.DeleteNotificationsRequest,
) (*heraldv1.DeleteNotificationsResponse, error) {
	if err := checkUserAndIDs(req.GetUserId(), req.GetIds()); err != nil {
		return nil, invalid(err)
	}
	unread, err := s.store.Delete(ctx, req.GetUserId(), req.GetIds())
	if err != nil {
		return nil, s.fromStore(ctx, "delete notifications", err)
	}
	return &heraldv1.DeleteNotificationsResponse{UnreadCount: int64(unread)}, nil
}

// IssueConnectToken returns a short-lived token for the user's browser.
func (s *Service) IssueConnectToken(
	ctx context.Context,
	req *heraldv1.IssueConnectTokenRequest,
) (*heraldv1.IssueConnectTokenResponse, error) {
	if s.tokens == nil {
		return nil, status.Error(codes.Unimplemented,
			"this Herald cannot issue connect tokens: it has no signing key "+
				"(it verifies tokens with --jwt-public-key-file); issue them in the host")
	}
	if err := notification.ValidateUserID(req.GetUserId()); err != nil {
		return nil, invalid(err)
	}
	ttl, err := tokenTTL(req.GetTtlSeconds())
	if err != nil {
		return nil, invalid(err)
	}
	token, expires, err := s.tokens.Issue(req.GetUserId(), ttl)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fromContext(ctxErr)
		}
		// The error never carries the token; log the user id only.
		s.log.Error("issue connect token failed", "user_id", req.GetUserId(), "error", err)
		return nil, status.Errorf(codes.Internal, "issue connect token: %v", err)
	}
	return &heraldv1.IssueConnectTokenResponse{Token: token, ExpiresAtUnixMs: expires.UnixMilli()}, nil
}

// Presence returns how many live connections a user has, per replica.
func (s *Service) Presence(
	ctx context.Context,
	req *heraldv1.PresenceRequest,
) (*heraldv1.PresenceResponse, error) {
	if s.presence == nil {
		return nil, status.Error(codes.Unimplemented, "presence is not available on this Herald")
	}
	if err := notification.ValidateUserID(req.GetUserId()); err != nil {
		return nil, invalid(err)
	}
	replicas, err := s.presence(ctx, req.GetUserId())
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fromContext(ctxErr)
		}
		// Presence depends on the other replicas (Redis); a failure there
		// is transient from the caller's point of view.
		s.log.Warn("presence failed", "user_id", req.GetUserId(), "error", err)
		return nil, status.Errorf(codes.Unavailable, "presence: %v", err)
	}
	resp := &heraldv1.PresenceResponse{Replicas: make(map[string]int64, len(replicas))}
	for node, n := range replicas {
		resp.Replicas[node] = n
		resp.Connections += n
	}
	return resp, nil
}

package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/store"
)

// draftFromProto converts a request's notification; it does not validate.
func draftFromProto(n *heraldv1.NewNotification) notification.Draft {
	d := notification.Draft{
		UserID:         n.GetUserId(),
		Type:           n.GetType(),
		Title:          n.GetTitle(),
		Body:           n.GetBody(),
		Link:           n.GetLink(),
		IdempotencyKey: n.GetIdempotencyKey(),
	}
	if n.GetDataJson() != "" {
		d.Data = json.RawMessage(n.GetDataJson())
	}
	return d
}

// toProto converts a stored notification for a response.
func toProto(n *notification.Notification) *heraldv1.Notification {
	return &heraldv1.Notification{
		Id:              n.ID,
		UserId:          n.UserID,
		Type:            n.Type,
		Title:           n.Title,
		Body:            n.Body,
		Link:            n.Link,
		DataJson:        string(n.Data),
		CreatedAtUnixMs: n.CreatedAt.UnixMilli(),
		IsRead:          n.IsRead,
	}
}

// indexed names item i of a repeated field, e.g. "notifications[3]".
func indexed(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// checkBatch checks the size of a repeated field of 1 to MaxBatch items.
func checkBatch(field string, n int) error {
	switch {
	case n == 0:
		return &notification.FieldError{Field: field, Problem: "must not be empty"}
	case n > notification.MaxBatch:
		return &notification.FieldError{
			Field:   field,
			Problem: fmt.Sprintf("holds %d items, at most %d allowed", n, notification.MaxBatch),
		}
	}
	return nil
}

// checkUserAndIDs validates the arguments of MarkRead and DeleteNotifications.
func checkUserAndIDs(userID string, ids []string) error {
	if err := notification.ValidateUserID(userID); err != nil {
		return err
	}
	return notification.ValidateIDs("ids", ids)
}

// pageLimit applies ListNotifications' default and range to limit.
func pageLimit(limit int32) (int, error) {
	switch {
	case limit == 0:
		return DefaultLimit, nil
	case limit < 1 || limit > MaxLimit:
		return 0, &notification.FieldError{
			Field:   "limit",
			Problem: fmt.Sprintf("is %d, must be 1 to %d (0 means %d)", limit, MaxLimit, DefaultLimit),
		}
	}
	return int(limit), nil
}

// tokenTTL applies IssueConnectToken's default and range to ttl_seconds.
func tokenTTL(seconds int64) (time.Duration, error) {
	maxSeconds := int64(MaxTokenTTL / time.Second)
	switch {
	case seconds == 0:
		return DefaultTokenTTL, nil
	case seconds < 1 || seconds > maxSeconds:
		return 0, &notification.FieldError{
			Field: "ttl_seconds",
			Problem: fmt.Sprintf("is %d, must be 1 to %d (0 means %d)",
				seconds, maxSeconds, int64(DefaultTokenTTL/time.Second)),
		}
	}
	return time.Duration(seconds) * time.Second, nil
}

// invalid turns a validation error into InvalidArgument. Its message names
// the field as the proto spells it ("notifications[3].data_json").
func invalid(err error) error {
	var fe *notification.FieldError
	if !errors.As(err, &fe) {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	field := fe.Field
	if field == "data" || strings.HasSuffix(field, ".data") {
		field += "_json"
	}
	return status.Error(codes.InvalidArgument, field+": "+fe.Problem)
}

// fromContext turns a context error into its gRPC status.
func fromContext(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Error(codes.DeadlineExceeded, err.Error())
	}
	return status.Error(codes.Canceled, err.Error())
}

// fromStore turns a store error into a gRPC status. Errors the caller cannot
// act on are logged here, at error level and without any notification
// content.
func (s *Service) fromStore(ctx context.Context, op string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return status.Error(codes.NotFound, "ids: a notification does not exist for this user")
	case errors.Is(err, store.ErrClosed):
		return status.Error(codes.Unavailable, "herald is shutting down: its store is closed")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fromContext(err)
	case ctx.Err() != nil:
		return fromContext(ctx.Err())
	case notification.IsFieldError(err):
		// The store checks again what the service checked; reaching it means
		// the two disagree, but the caller still deserves the field's name.
		return invalid(err)
	}
	s.log.Error("rpc failed", "op", op, "error", err)
	return status.Errorf(codes.Internal, "%s: %v", op, err)
}

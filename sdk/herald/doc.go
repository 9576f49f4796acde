// Package herald is the Go SDK of Herald, the notification sidecar: a host
// application uses it to create notifications for its users, read and change
// their unread state, and issue the connect tokens browsers open Herald's
// WebSocket with.
//
// A host reaches Herald in one of two ways. Launch starts the herald binary
// as a child process through go-plugin (plugin mode): the host owns Herald's
// lifetime and Close stops it. Attach connects to a `herald serve` that runs
// on its own (sidecar mode) through its Unix socket: Close only disconnects.
// Both give the same *Client, which is safe for concurrent use.
//
//	h, err := herald.Launch(ctx, herald.LaunchConfig{
//		Path: "/usr/local/bin/herald",
//		Args: []string{"serve", "--data-dir", "/var/lib/herald", "--http-addr", "127.0.0.1:8787"},
//	})
//	if err != nil {
//		return err
//	}
//	defer h.Close()
//
//	n, err := h.CreateNotification(ctx, herald.NewNotification{
//		UserID:         "42",
//		Type:           "task.assigned",
//		Title:          "Task 17 assigned to you",
//		Link:           "/tasks/17",
//		IdempotencyKey: "task-17-assigned-42", // a retry returns the same notification
//	})
//	switch {
//	case errors.Is(err, herald.ErrInvalidArgument):
//		// a bug in the host: the message names the field
//	case errors.Is(err, herald.ErrUnavailable):
//		// Herald is down or restarting: retry with backoff
//	}
//
// Every method honours its context's deadline. Errors of a call are
// *Error values carrying the gRPC status code and message; compare them with
// errors.Is against ErrInvalidArgument, ErrNotFound, ErrUnavailable and the
// other sentinels, or read the status with google.golang.org/grpc/status.
package herald

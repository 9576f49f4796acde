package herald_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/heraldhq/herald/sdk/herald"
)

// A host attached to a `herald serve` sidecar creates a notification and
// hands its user's browser a connect token.
func ExampleAttach() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	h, err := herald.Attach(ctx, "/run/herald/herald.sock")
	if err != nil {
		log.Fatal(err) // errors.Is(err, herald.ErrUnavailable): no sidecar there
	}
	defer h.Close() // disconnects; the sidecar keeps running

	_, err = h.CreateNotification(ctx, herald.NewNotification{
		UserID: "42",
		Type:   "task.assigned",
		Title:  "Task 17 assigned to you",
		Link:   "/tasks/17",
	})
	if errors.Is(err, herald.ErrInvalidArgument) {
		log.Fatal(err) // the message names the field
	}

	tok, err := h.IssueConnectToken(ctx, "42", 5*time.Minute)
	if err != nil {
		log.Fatal(err)
	}
	_ = tok.Token // the browser opens ws://…/ws?token=<tok.Token>
}

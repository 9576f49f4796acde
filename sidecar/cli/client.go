package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/heraldhq/herald/sdk/herald"
	"github.com/heraldhq/herald/sidecar/config"
	"github.com/heraldhq/herald/sidecar/notification"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	socket  string
	dataDir string
	user    string
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.socket, "socket", "", "Unix socket of a running `herald serve` (default <data-dir>/herald.sock)")
	fs.StringVar(&f.dataDir, "data-dir", config.Default().DataDir, "data directory of that `herald serve`, to find its socket")
	fs.StringVar(&f.user, "user", "", "user id (required)")
}

// flagUsage turns a field error of a draft into bad usage naming the flag
// that set the field ("--data: must be a JSON object").
func flagUsage(err error) error {
	var fe *notification.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	name := strings.ReplaceAll(fe.Field, "_", "-")
	if fe.Field == "user_id" {
		name = "user"
	}
	return usagef("--%s: %s", name, fe.Problem)
}

// check reports a missing required flag as bad usage, before any dialing.
func (f *clientFlags) check(required map[string]string) error {
	if f.user == "" {
		return usagef("--user is required")
	}
	if err := notification.ValidateUserID(f.user); err != nil {
		return flagUsage(err)
	}
	for name, value := range required {
		if value == "" {
			return usagef("--%s is required", name)
		}
	}
	return nil
}

// run checks the arguments and required flags, then runs validate (when
// set) so that a bad value is bad usage before any dialing, attaches to the
// sidecar, calls fn with the client and detaches.
func (f *clientFlags) run(ctx context.Context, args []string, required map[string]string,
	validate func() error, fn func(*herald.Client) error) error {
	if err := noArgs(args); err != nil {
		return err
	}
	if err := f.check(required); err != nil {
		return err
	}
	if validate != nil {
		if err := validate(); err != nil {
			return err
		}
	}
	cfg := config.Config{DataDir: f.dataDir, Socket: f.socket}
	c, err := herald.Attach(ctx, cfg.SocketPath())
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

func notifyCommand(io ioPair) *ffcli.Command {
	var cf clientFlags
	fs := flag.NewFlagSet("herald notify", flag.ContinueOnError)
	cf.register(fs)
	typ := fs.String("type", "", "the event's name, e.g. task.assigned (required)")
	title := fs.String("title", "", "title shown to the user (required)")
	body := fs.String("body", "", "longer text")
	link := fs.String("link", "", "where the notification leads, e.g. /tasks/17")
	data := fs.String("data", "", "a JSON object for the page's own use")
	key := fs.String("idempotency-key", "", "a retry with the same key returns the first notification")
	return &ffcli.Command{
		Name:       "notify",
		ShortUsage: "herald notify [--socket PATH | --data-dir DIR] --user ID --type T --title S [--body] [--link] [--data JSON]",
		ShortHelp:  "create a notification and print it as JSON",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			required := map[string]string{"type": *typ, "title": *title}
			d := notification.Draft{UserID: cf.user, Type: *typ, Title: *title, Body: *body,
				Link: *link, IdempotencyKey: *key}
			if *data != "" {
				d.Data = json.RawMessage(*data)
			}
			validate := func() error { return flagUsage(d.Validate()) }
			return cf.run(ctx, args, required, validate, func(c *herald.Client) error {
				n, err := c.CreateNotification(ctx, herald.NewNotification{
					UserID: d.UserID, Type: d.Type, Title: d.Title, Body: d.Body, Link: d.Link,
					Data: d.Data, IdempotencyKey: d.IdempotencyKey,
				})
				if err != nil {
					return err
				}
				return printJSON(io.out, n)
			})
		},
	}
}

func unreadCommand(io ioPair) *ffcli.Command {
	var cf clientFlags
	fs := flag.NewFlagSet("herald unread", flag.ContinueOnError)
	cf.register(fs)
	return &ffcli.Command{
		Name:       "unread",
		ShortUsage: "herald unread [--socket PATH | --data-dir DIR] --user ID",
		ShortHelp:  "print a user's unread notifications, one JSON object per line, oldest first",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return cf.run(ctx, args, nil, nil, func(c *herald.Client) error {
				all, err := allUnread(ctx, c, cf.user)
				if err != nil {
					return err
				}
				for _, n := range all {
					if err := printJSON(io.out, n); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
}

func readCommand(io ioPair) *ffcli.Command {
	var cf clientFlags
	var ids multiFlag
	fs := flag.NewFlagSet("herald read", flag.ContinueOnError)
	cf.register(fs)
	fs.Var(&ids, "id", "a notification id to mark read (repeatable)")
	all := fs.Bool("all", false, "mark all of the user's notifications read")
	return &ffcli.Command{
		Name:       "read",
		ShortUsage: "herald read [--socket PATH | --data-dir DIR] --user ID (--id ID ... | --all)",
		ShortHelp:  "mark notifications read; prints nothing on success",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if *all == (len(ids) > 0) {
				return usagef("give either --id (one or more) or --all")
			}
			validate := func() error {
				if *all {
					return nil
				}
				return flagUsage(notification.ValidateIDs("id", ids))
			}
			return cf.run(ctx, args, nil, validate, func(c *herald.Client) error {
				var err error
				if *all {
					_, err = c.MarkAllRead(ctx, cf.user)
				} else {
					_, err = c.MarkRead(ctx, cf.user, ids)
				}
				return err
			})
		},
	}
}

// allUnread pages through the user's unread notifications and returns them
// oldest first.
func allUnread(ctx context.Context, c *herald.Client, userID string) ([]herald.Notification, error) {
	var all []herald.Notification
	before := ""
	for {
		page, err := c.ListNotifications(ctx, herald.ListOptions{
			UserID: userID, UnreadOnly: true, Before: before, Limit: 100,
		})
		if err != nil {
			return nil, err
		}
		all = append(all, page.Notifications...)
		if page.Next == "" {
			break
		}
		before = page.Next
	}
	slices.Reverse(all) // pages are newest first
	return all, nil
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint([]string(*m)) }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

package main

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	heraldjs "github.com/heraldhq/herald/sdk/js"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/heraldhq/herald/sdk/herald"
)

//go:embed web
var webFiles embed.FS

// userCookie holds the logged-in user's name. This is a demo: there is no
// password, and anyone can be anyone. A real application authenticates its
// users and keeps a session; Herald only needs the user id.
const userCookie = "taskboard_user"

// heraldTimeout bounds each call to Herald from a request handler.
const heraldTimeout = 5 * time.Second

// notifier is the part of the Herald SDK's client the taskboard uses.
type notifier interface {
	CreateNotification(ctx context.Context, n herald.NewNotification) (herald.Notification, error)
	CreateNotifications(ctx context.Context, ns []herald.NewNotification) ([]herald.Notification, error)
	IssueConnectToken(ctx context.Context, userID string, ttl time.Duration) (herald.ConnectToken, error)
}

// server is the taskboard's HTTP application.
type server struct {
	board    *Board
	herald   notifier
	wsURL    string        // the Herald WebSocket URL browsers open
	tokenTTL time.Duration // lifetime of a connect token
	sdkJS    string        // --sdk-js, or empty for the embedded SDK
	log      *slog.Logger
}

func (s *server) routes() http.Handler {
	static, _ := fs.Sub(webFiles, "web")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /tasks/{id}", s.page)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /herald.js", s.heraldJS)
	mux.HandleFunc("GET /login", s.login)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})

	mux.HandleFunc("GET /api/session", s.withUser(s.session))
	mux.HandleFunc("GET /api/herald-token", s.withUser(s.heraldToken))
	mux.HandleFunc("GET /api/tasks", s.withUser(s.listTasks))
	mux.HandleFunc("POST /api/tasks", s.withUser(s.createTask))
	mux.HandleFunc("POST /api/tasks/{id}/assign", s.withUser(s.assign))
	mux.HandleFunc("POST /api/tasks/{id}/comments", s.withUser(s.comment))
	mux.HandleFunc("POST /api/tasks/{id}/block", s.withUser(s.block))
	return mux
}

func (s *server) page(w http.ResponseWriter, r *http.Request) {
	http.ServeFileFS(w, r, webFiles, "web/index.html")
}

// heraldJS serves the browser SDK: the copy embedded from sdk/js, or the
// file given with --sdk-js.
func (s *server) heraldJS(w http.ResponseWriter, r *http.Request) {
	if s.sdkJS == "" {
		heraldjs.Handler().ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	http.ServeFile(w, r, s.sdkJS)
}

// login sets the user cookie: GET /login?user=bob, or the login form.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	user := r.FormValue("user")
	if !userName.MatchString(user) {
		http.Error(w, "user: 1 to 64 letters, digits, '_', '.' or '-'", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: userCookie, Value: user, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: userCookie, Path: "/", MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// withUser passes the logged-in user to h, or answers 401. Requests that
// change something must be JSON: a cross-site form cannot send that without
// a CORS preflight, which is this demo's only CSRF defence.
func (s *server) withUser(h func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(userCookie)
		if err != nil || !userName.MatchString(c.Value) {
			writeError(w, http.StatusUnauthorized, "log in first: /login?user=NAME")
			return
		}
		if r.Method == http.MethodPost {
			if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
				writeError(w, http.StatusUnsupportedMediaType, "send application/json")
				return
			}
		}
		h(w, r, c.Value)
	}
}

func (s *server) session(w http.ResponseWriter, _ *http.Request, user string) {
	writeJSON(w, http.StatusOK, map[string]string{"user": user})
}

// heraldToken returns a short-lived connect token for the logged-in user and
// the WebSocket URL to use it on. The token is what ties a socket to a user:
// the browser never sees Herald's signing key or the application's session.
func (s *server) heraldToken(w http.ResponseWriter, r *http.Request, user string) {
	ctx, cancel := context.WithTimeout(r.Context(), heraldTimeout)
	defer cancel()
	tok, err := s.herald.IssueConnectToken(ctx, user, s.tokenTTL)
	if err != nil {
		s.log.Error("issue connect token", "user_id", user, "error", err)
		writeError(w, http.StatusBadGateway, "herald: "+err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{
		"url":        s.wsURL,
		"token":      tok.Token,
		"expires_at": tok.ExpiresAt.UnixMilli(),
	})
}

func (s *server) listTasks(w http.ResponseWriter, _ *http.Request, _ string) {
	writeJSON(w, http.StatusOK, map[string]any{"tasks": s.board.Tasks()})
}

func (s *server) createTask(w http.ResponseWriter, r *http.Request, user string) {
	var in struct {
		Title string `json:"title"`
	}
	if !readJSON(w, r, &in) {
		return
	}
	t, err := s.board.Create(user, in.Title)
	if err != nil {
		writeBoardError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"task": t})
}

func (s *server) assign(w http.ResponseWriter, r *http.Request, user string) {
	var in struct {
		Assignee string `json:"assignee"`
	}
	s.act(w, r, &in, func(id int) (Task, []herald.NewNotification, error) {
		return s.board.Assign(user, id, in.Assignee)
	})
}

func (s *server) comment(w http.ResponseWriter, r *http.Request, user string) {
	var in struct {
		Text string `json:"text"`
	}
	s.act(w, r, &in, func(id int) (Task, []herald.NewNotification, error) {
		return s.board.Comment(user, id, in.Text)
	})
}

func (s *server) block(w http.ResponseWriter, r *http.Request, user string) {
	var in struct {
		Reason string `json:"reason"`
	}
	s.act(w, r, &in, func(id int) (Task, []herald.NewNotification, error) {
		return s.board.Block(user, id, in.Reason)
	})
}

// act runs one board action and sends the notifications it produced.
func (s *server) act(w http.ResponseWriter, r *http.Request, in any,
	do func(id int) (Task, []herald.NewNotification, error)) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusNotFound, "no such task")
		return
	}
	if !readJSON(w, r, in) {
		return
	}
	task, ns, err := do(id)
	if err != nil {
		writeBoardError(w, err)
		return
	}
	created, err := s.notify(r.Context(), ns)
	if err != nil {
		// The board changed but nobody was told. A real application would
		// write the event to its own outbox in the same transaction as the
		// change and retry; the idempotency key makes such retries safe.
		s.log.Error("create notifications", "count", len(ns), "error", err)
		writeError(w, http.StatusBadGateway, "the task changed, but Herald did not take the notifications: "+err.Error())
		return
	}
	ids := make([]string, 0, len(created))
	users := make([]string, 0, len(created))
	for _, n := range created {
		ids = append(ids, n.ID)
		users = append(users, n.UserID)
	}
	writeJSON(w, http.StatusOK, map[string]any{"task": task, "notified": users, "notification_ids": ids})
}

// notify sends one event's notifications: one for a single recipient, all
// in one CreateNotifications call (one durable commit) for several.
func (s *server) notify(ctx context.Context, ns []herald.NewNotification) ([]herald.Notification, error) {
	if len(ns) == 0 {
		return nil, nil
	}
	// The event's id, as the idempotency key of each of its notifications
	// (keys are per user): a retried request creates nothing twice.
	key := newEventID()
	for i := range ns {
		ns[i].IdempotencyKey = key
	}
	ctx, cancel := context.WithTimeout(ctx, heraldTimeout)
	defer cancel()
	if len(ns) == 1 {
		n, err := s.herald.CreateNotification(ctx, ns[0])
		if err != nil {
			return nil, err
		}
		return []herald.Notification{n}, nil
	}
	return s.herald.CreateNotifications(ctx, ns)
}

func newEventID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "evt-" + hex.EncodeToString(b[:])
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	return true
}

func writeBoardError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, errNoTask):
		writeError(w, http.StatusNotFound, "no such task")
	case errors.Is(err, errBadInput):
		writeError(w, http.StatusBadRequest, err.Error())
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/sdk/herald"
)

// Errors of the board's actions, mapped to HTTP statuses by the server.
var (
	// errNoTask is returned for an unknown task id.
	errNoTask = errors.New("taskboard: no such task")
	// errBadInput is returned for an invalid user name, comment or reason.
	errBadInput = errors.New("taskboard: invalid input")
)

// maxText bounds comments and block reasons; Herald's body limit is 16 KiB.
const maxText = 4000

// maxMentions bounds the users one comment notifies.
const maxMentions = 50

var (
	userName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	mention  = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.@-])@([A-Za-z0-9_.-]{1,64})`)
)

// Task is one task of the board.
type Task struct {
	ID            int       `json:"id"`
	Title         string    `json:"title"`
	Assignee      string    `json:"assignee,omitempty"`
	Watchers      []string  `json:"watchers"`
	Blocked       bool      `json:"blocked"`
	BlockedReason string    `json:"blocked_reason,omitempty"`
	Comments      []Comment `json:"comments"`
}

// Comment is a comment on a task.
type Comment struct {
	ID     int       `json:"id"`
	Author string    `json:"author"`
	Text   string    `json:"text"`
	At     time.Time `json:"at"`
}

// Board holds the tasks in memory. It is a stand-in for the application's
// database: each replica of the taskboard has its own. It is safe for
// concurrent use.
type Board struct {
	mu     sync.Mutex
	tasks  map[int]*Task
	nextID int
	nextCm int
}

// NewBoard returns a board with a few example tasks.
func NewBoard() *Board {
	b := &Board{tasks: make(map[int]*Task), nextID: 17}
	for _, t := range []struct{ title, owner string }{
		{"Fix the login page", "alice"},
		{"Write the release notes", "carol"},
		{"Upgrade the database driver", "dave"},
	} {
		b.tasks[b.nextID] = &Task{ID: b.nextID, Title: t.title, Watchers: []string{t.owner}}
		b.nextID++
	}
	return b
}

// Tasks returns a copy of every task, by id.
func (b *Board) Tasks() []Task {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]Task, 0, len(b.tasks))
	for _, t := range b.tasks {
		out = append(out, copyTask(t))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Create adds a task watched by its author.
func (b *Board) Create(actor, title string) (Task, error) {
	if title == "" || len(title) > 200 {
		return Task{}, fmt.Errorf("%w: a title of 1 to 200 bytes", errBadInput)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t := &Task{ID: b.nextID, Title: title, Watchers: []string{actor}}
	b.tasks[t.ID] = t
	b.nextID++
	return copyTask(t), nil
}

// Assign makes assignee the task's assignee and returns the notification
// for the assignee (none when actors assign themselves).
func (b *Board) Assign(actor string, id int, assignee string) (Task, []herald.NewNotification, error) {
	if !userName.MatchString(assignee) {
		return Task{}, nil, fmt.Errorf("%w: assignee must be a user name", errBadInput)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tasks[id]
	if !ok {
		return Task{}, nil, errNoTask
	}
	t.Assignee = assignee
	watch(t, assignee)
	if assignee == actor {
		return copyTask(t), nil, nil
	}
	n := herald.NewNotification{
		UserID: assignee,
		Type:   "task.assigned",
		Title:  fmt.Sprintf("Task %d was assigned to you", t.ID),
		Body:   fmt.Sprintf("%s assigned you “%s”.", actor, t.Title),
		Link:   fmt.Sprintf("/tasks/%d", t.ID),
		Data:   eventData(t.ID, actor),
	}
	return copyTask(t), []herald.NewNotification{n}, nil
}

// Comment adds a comment and returns one notification per user it
// @mentions, the author excepted.
func (b *Board) Comment(actor string, id int, text string) (Task, []herald.NewNotification, error) {
	if text == "" || len(text) > maxText {
		return Task{}, nil, fmt.Errorf("%w: a comment of 1 to %d bytes", errBadInput, maxText)
	}
	mentioned := Mentions(text, actor)
	if len(mentioned) > maxMentions {
		return Task{}, nil, fmt.Errorf("%w: at most %d mentions", errBadInput, maxMentions)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tasks[id]
	if !ok {
		return Task{}, nil, errNoTask
	}
	b.nextCm++
	c := Comment{ID: b.nextCm, Author: actor, Text: text, At: time.Now().UTC()}
	t.Comments = append(t.Comments, c)
	watch(t, actor)

	out := make([]herald.NewNotification, 0, len(mentioned))
	for _, user := range mentioned {
		out = append(out, herald.NewNotification{
			UserID: user,
			Type:   "comment.mentioned",
			Title:  fmt.Sprintf("%s mentioned you on task %d", actor, t.ID),
			Body:   text,
			Link:   fmt.Sprintf("/tasks/%d#comment-%d", t.ID, c.ID),
			Data:   eventData(t.ID, actor),
		})
	}
	return copyTask(t), out, nil
}

// Block flags the task as blocked and returns a notification for each of its
// watchers and its assignee, the actor excepted.
func (b *Board) Block(actor string, id int, reason string) (Task, []herald.NewNotification, error) {
	if len(reason) > maxText {
		return Task{}, nil, fmt.Errorf("%w: a reason of at most %d bytes", errBadInput, maxText)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.tasks[id]
	if !ok {
		return Task{}, nil, errNoTask
	}
	t.Blocked, t.BlockedReason = true, reason
	recipients := slices.Clone(t.Watchers)
	if t.Assignee != "" && !slices.Contains(recipients, t.Assignee) {
		recipients = append(recipients, t.Assignee)
	}
	body := fmt.Sprintf("%s flagged “%s” as blocked.", actor, t.Title)
	if reason != "" {
		body += " Reason: " + reason
	}
	var out []herald.NewNotification
	for _, user := range recipients {
		if user == actor {
			continue
		}
		out = append(out, herald.NewNotification{
			UserID: user,
			Type:   "task.blocked",
			Title:  fmt.Sprintf("Task %d is blocked", t.ID),
			Body:   body,
			Link:   fmt.Sprintf("/tasks/%d", t.ID),
			Data:   eventData(t.ID, actor),
		})
	}
	return copyTask(t), out, nil
}

// Mentions returns the distinct users @mentioned in text, in order of first
// mention, without author.
func Mentions(text, author string) []string {
	var out []string
	for _, m := range mention.FindAllStringSubmatch(text, -1) {
		// "@bob." at the end of a sentence mentions bob.
		user := strings.TrimRight(m[1], ".-")
		if user != "" && user != author && !slices.Contains(out, user) {
			out = append(out, user)
		}
	}
	return out
}

func watch(t *Task, user string) {
	if !slices.Contains(t.Watchers, user) {
		t.Watchers = append(t.Watchers, user)
	}
}

func copyTask(t *Task) Task {
	c := *t
	c.Watchers = slices.Clone(t.Watchers)
	c.Comments = slices.Clone(t.Comments)
	if c.Comments == nil {
		c.Comments = []Comment{}
	}
	return c
}

// eventData is the notification's data object: what the page needs to act
// on it without parsing the text.
func eventData(taskID int, actor string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"task_id": taskID, "by": actor})
	return b
}

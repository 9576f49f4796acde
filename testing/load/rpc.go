package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/heraldhq/herald/plugin/heraldv1"
)

// rpcPool is a few gRPC connections to one Herald's Unix socket, used round
// robin. It is safe for concurrent use.
type rpcPool struct {
	conns   []*grpc.ClientConn
	clients []heraldv1.NotificationServiceClient
	next    atomic.Uint64
}

// dialRPC opens n gRPC connections to the Unix socket path and checks that
// the service answers.
func dialRPC(ctx context.Context, path string, n int) (*rpcPool, error) {
	if path == "" {
		return nil, errors.New("--socket is required (the Herald's gRPC Unix socket)")
	}
	p := &rpcPool{}
	for range max(n, 1) {
		cc, err := grpc.NewClient("unix:"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			p.close()
			return nil, fmt.Errorf("dial %s: %w", path, err)
		}
		p.conns = append(p.conns, cc)
		p.clients = append(p.clients, heraldv1.NewNotificationServiceClient(cc))
	}
	// One cheap call proves the socket is a Herald before the clock starts.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p.client().UnreadCount(cctx, &heraldv1.UnreadCountRequest{UserId: "load-probe"}); err != nil {
		p.close()
		return nil, fmt.Errorf("herald at %s does not answer: %w", path, err)
	}
	return p, nil
}

func (p *rpcPool) client() heraldv1.NotificationServiceClient {
	return p.clients[p.next.Add(1)%uint64(len(p.clients))]
}

func (p *rpcPool) close() {
	for _, c := range p.conns {
		_ = c.Close()
	}
}

// loadNotification returns a notification for user carrying seq and the
// creation time in its data.
func loadNotification(user, run string, seq int64, t time.Time) *heraldv1.NewNotification {
	data := make([]byte, 0, 96)
	data = append(data, `{"t_ns":`...)
	data = strconv.AppendInt(data, t.UnixNano(), 10)
	data = append(data, `,"seq":`...)
	data = strconv.AppendInt(data, seq, 10)
	data = append(data, `,"run":`...)
	data = strconv.AppendQuote(data, run)
	data = append(data, '}')
	return &heraldv1.NewNotification{
		UserId:   user,
		Type:     "load.test",
		Title:    "Load test notification " + strconv.FormatInt(seq, 10),
		Body:     "Created by testing/load to measure delivery.",
		Link:     "/load/" + strconv.FormatInt(seq, 10),
		DataJson: string(data),
	}
}

// rpcErrorClass names an RPC error by its gRPC code.
func rpcErrorClass(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Code().String()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "DeadlineExceeded"
	}
	return errorClass(err)
}

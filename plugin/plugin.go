// Package plugin is Herald's RPC contract glue: the go-plugin handshake and
// plugin map shared by the herald binary and the Go SDK, the gRPC adapters of
// herald.v1.NotificationService, serving in plugin mode (Serve), and the
// Unix-socket listener and gRPC server of sidecar mode (ListenUnix,
// NewServer).
//
// Binaries and SDKs take the magic cookie, the plugin name and the protocol
// version from here and never repeat them.
package plugin

import (
	"context"
	"errors"
	"math"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/heraldhq/herald/plugin/heraldv1"
)

// ProtocolVersion is the application protocol version of the Herald plugin.
// It changes only with an incompatible change of herald.v1.
const ProtocolVersion = 1

// PluginName is the name under which the NotificationService is dispensed.
const PluginName = "notifications"

// Handshake is the go-plugin handshake between a host and a Herald it
// launches. The cookie only keeps a user from running the plugin binary by
// hand by mistake; it is not a security measure.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "HERALD_PLUGIN",
	MagicCookieValue: "9c71812d1d05e4f09f2c8e357b95ceff1384c4e2be14a805",
}

// MaxMessageSize is the largest gRPC message, in bytes, that Herald's
// servers accept and its clients receive. A CreateNotifications batch of
// 1000 notifications at their size limits is about 53 MB; gRPC's default of
// 4 MiB would refuse a legal request.
const MaxMessageSize = 64 << 20

// ErrNoImpl is returned when a server is asked to serve without a
// NotificationService implementation.
var ErrNoImpl = errors.New("plugin: no NotificationService implementation")

// GRPCPlugin is the go-plugin adapter of the NotificationService. On the
// server side it registers Impl; on the client side it returns a
// heraldv1.NotificationServiceClient. It does not support net/rpc.
type GRPCPlugin struct {
	goplugin.NetRPCUnsupportedPlugin

	// Impl is the service served; nil on the client side.
	Impl heraldv1.NotificationServiceServer
}

var _ goplugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers Impl on s. It fails with ErrNoImpl when Impl is nil.
func (p *GRPCPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	if p.Impl == nil {
		return ErrNoImpl
	}
	heraldv1.RegisterNotificationServiceServer(s, p.Impl)
	return nil
}

// GRPCClient returns a heraldv1.NotificationServiceClient on conn.
func (p *GRPCPlugin) GRPCClient(
	_ context.Context,
	_ *goplugin.GRPCBroker,
	conn *grpc.ClientConn,
) (interface{}, error) {
	return heraldv1.NewNotificationServiceClient(conn), nil
}

// PluginSet returns the plugin map holding impl under PluginName. Hosts pass
// a nil impl.
func PluginSet(impl heraldv1.NotificationServiceServer) goplugin.PluginSet {
	return goplugin.PluginSet{PluginName: &GRPCPlugin{Impl: impl}}
}

// VersionedPlugins returns the plugin map of every protocol version Herald
// speaks, for go-plugin's version negotiation.
func VersionedPlugins(impl heraldv1.NotificationServiceServer) map[int]goplugin.PluginSet {
	return map[int]goplugin.PluginSet{ProtocolVersion: PluginSet(impl)}
}

// serverOptions are the options of every Herald gRPC server, in both modes.
func serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(math.MaxInt32),
	}
}

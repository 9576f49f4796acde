package plugin

import (
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/heraldhq/herald/plugin/heraldv1"
)

// NewServer returns the gRPC server of sidecar mode: impl, the standard
// health service reporting go-plugin's service name ("plugin"), the whole
// server ("") and herald.v1.NotificationService as SERVING, and server
// reflection for tools such as grpcurl. Extra options (interceptors, for
// example) are added to Herald's own.
//
// It deliberately does not register go-plugin's GRPCController: a host that
// attaches to a shared sidecar and calls Kill must not be able to shut it
// down. The caller serves it on a listener from ListenUnix and stops it.
func NewServer(impl heraldv1.NotificationServiceServer, opts ...grpc.ServerOption) *grpc.Server {
	s := grpc.NewServer(append(serverOptions(), opts...)...)
	heraldv1.RegisterNotificationServiceServer(s, impl)

	hs := health.NewServer()
	for _, name := range []string{
		"",
		goplugin.GRPCServiceName,
		heraldv1.NotificationService_ServiceDesc.ServiceName,
	} {
		hs.SetServingStatus(name, grpc_health_v1.HealthCheckResponse_SERVING)
	}
	grpc_health_v1.RegisterHealthServer(s, hs)
	reflection.Register(s)
	return s
}

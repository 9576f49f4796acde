package main

import (
	"net"
	"syscall"
	"time"

	"github.com/lxzan/gws"
)

// ipBindAddressNoPort is Linux's IP_BIND_ADDRESS_NO_PORT (include/uapi/linux/in.h).
// With it, binding a source address defers the port choice to connect(), so
// the kernel picks a port unique per 4-tuple rather than per source address:
// one source address then serves each destination's full ephemeral range.
const ipBindAddressNoPort = 24

// newDialer returns a gws dialer factory binding to source (an IP), or the
// kernel's choice of source when source is empty.
func newDialer(source string, timeout time.Duration) func() (gws.Dialer, error) {
	d := &net.Dialer{Timeout: timeout}
	if source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(source)}
		d.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return func() (gws.Dialer, error) { return d, nil }
}

package tunnel

import (
	"net"
	"strings"
)

// LoopbackHost reports whether h is localhost or a loopback IP.
func LoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

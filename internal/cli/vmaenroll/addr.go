package vmaenroll

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// omaAddr is the OMA's address as HOST[:PORT] parsed.
type omaAddr struct {
	Host string
	Port int
}

func (a omaAddr) String() string { return net.JoinHostPort(a.Host, strconv.Itoa(a.Port)) }

// URL is the base URL of the OMA's public listener.
func (a omaAddr) URL() string { return "https://" + a.String() }

// parseOMA accepts HOST, HOST:PORT, [IPv6]:PORT, a bare IPv6 address, and
// tolerates an https:// prefix and a trailing slash.
func parseOMA(s string) (omaAddr, error) {
	in := s
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "https://"); ok {
		s = s[len(s)-len(rest):]
	} else if strings.Contains(s, "://") {
		return omaAddr{}, fmt.Errorf("OMA address %q: give HOST[:PORT] (the OMA is always reached over https)", enroll.Printable(in))
	}
	s = strings.TrimSuffix(s, "/")
	if s == "" {
		return omaAddr{}, fmt.Errorf("the OMA address is empty: give HOST[:PORT], like oma.example.com or 203.0.113.5:443")
	}
	host, port := s, DefaultPort
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return omaAddr{}, fmt.Errorf("OMA address %q has no valid port (1-65535)", enroll.Printable(in))
		}
		host, port = h, n
	} else if strings.Count(s, ":") > 1 && net.ParseIP(strings.Trim(s, "[]")) != nil {
		host = strings.Trim(s, "[]")
	}
	if net.ParseIP(host) == nil {
		u, err := url.Parse("https://" + host)
		if err != nil || u.Host != host || strings.ContainsAny(host, " /?#@[]") || !validHostname(host) {
			return omaAddr{}, fmt.Errorf("OMA address %q is not a host name or IP address: give HOST[:PORT], like oma.example.com or 203.0.113.5:443", enroll.Printable(in))
		}
	}
	return omaAddr{Host: host, Port: port}, nil
}

func validHostname(h string) bool {
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return h[0] != '-' && h[0] != '.'
}

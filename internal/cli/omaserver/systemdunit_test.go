package omaserver

import (
	"strings"
	"testing"

	"github.com/oma-enroll/oma-enroll/internal/cli/cmdutil"
)

func TestSystemdUnit(t *testing.T) {
	ios, _, out, _ := cmdutil.Test()
	root := NewRootCmd(ios)
	root.SetArgs([]string{"systemd-unit", "--user", "oma"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	unit := out.String()
	for _, want := range []string{
		"User=oma\n", "ExecStart=/usr/local/bin/oma-server serve --data-dir /var/lib/oma-enroll\n",
		"AmbientCapabilities=CAP_NET_BIND_SERVICE\n", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
		"NoNewPrivileges=yes\n", "ProtectSystem=strict\n", "ReadWritePaths=/var/lib/oma-enroll\n",
		"StateDirectory=oma-enroll\n", "Restart=on-failure\n", "WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q:\n%s", want, unit)
		}
	}

	root = NewRootCmd(ios)
	root.SetArgs([]string{"systemd-unit", "--binary", "oma-server; rm -rf /"})
	if err := root.Execute(); err == nil {
		t.Fatal("a binary path with shell characters was accepted")
	}
}

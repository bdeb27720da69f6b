package vmaclient

import (
	"strings"
	"testing"
)

// Finding 13 of issue 13: vma-tunnel.service hides /tmp, /var/tmp (PrivateTmp)
// and /home, /root, /run/user (ProtectHome), so a config directory or a
// binary there cannot run as written; UnitProblems says so.
func TestUnitProblems(t *testing.T) {
	for _, c := range []struct {
		dir, bin string
		want     []string // substrings, one per problem
	}{
		{"/etc/vma-enroll", "/usr/local/bin/vma-enroll", nil},
		{"/etc/vma-enroll", "", nil},
		{"/var/lib/vma", "/opt/vma/bin/vma-enroll", nil},
		{"/tmp/vma", "/usr/local/bin/vma-enroll", []string{"config directory /tmp/vma is under /tmp, and PrivateTmp"}},
		{"/var/tmp/x", "/usr/local/bin/vma-enroll", []string{"under /var/tmp"}},
		{"/home/ops/vma", "/home/ops/bin/vma-enroll", []string{"config directory /home/ops/vma is under /home, and ProtectHome", "binary /home/ops/bin/vma-enroll is under /home"}},
		{"/root/vma", "/usr/bin/vma-enroll", []string{"under /root"}},
		{"/etc/vma-enroll", "/tmp/go-build1/vma-enroll", []string{"binary /tmp/go-build1/vma-enroll is under /tmp"}},
		{"/tmpfoo/vma", "/homework/vma-enroll", nil},
	} {
		got := UnitProblems(VMAConfig{Dir: c.dir, Binary: c.bin})
		if len(got) != len(c.want) {
			t.Errorf("UnitProblems(%s, %s) = %q, want %d problems", c.dir, c.bin, got, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("UnitProblems(%s, %s)[%d] = %q, want it to say %q", c.dir, c.bin, i, got[i], w)
			}
		}
	}
}

// Finding 13: the unit's sandbox goes further than before (systemd-analyze
// security 3.5 -> 1.7): a system call filter, its own processes only in
// /proc, private mounts and IPC.
func TestUnitSandbox(t *testing.T) {
	unit, err := RenderUnit(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\nSystemCallFilter=@system-service\n", "\nSystemCallFilter=~@privileged\n", "\nSystemCallErrorNumber=EPERM\n",
		"\nProtectProc=invisible\n", "\nProcSubset=pid\n", "\nPrivateMounts=yes\n", "\nPrivateIPC=yes\n",
		"\nProtectHome=yes\n", "\nPrivateTmp=yes\n", "\nCapabilityBoundingSet=\n", "\nNoNewPrivileges=yes\n",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("the unit lacks %q:\n%s", strings.TrimSpace(want), unit)
		}
	}
}

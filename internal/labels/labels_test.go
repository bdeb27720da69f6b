package labels

import (
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	s, err := ParseArgs([]string{"site=fra", "rack=a1,tier=", "example.com/owner=ops"})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "example.com/owner=ops,rack=a1,site=fra,tier=" {
		t.Fatalf("got %q", got)
	}
	for _, bad := range []string{"site", "=fra", "site=fr a", "-x=1", "x=" + strings.Repeat("a", 64), "Ex.com/x=1", "site=fra,site=muc", "k=v\x00"} {
		if _, err := ParseArgs([]string{bad}); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	many := []string{}
	for i := 0; i < 17; i++ {
		many = append(many, "k"+strings.Repeat("x", i)+"=v")
	}
	if _, err := ParseArgs(many); err == nil {
		t.Error("17 labels accepted")
	}
	back, err := Decode(s.Encode())
	if err != nil || back.String() != s.String() {
		t.Fatalf("round trip: %v %v", back, err)
	}
}

func TestSelector(t *testing.T) {
	fra := Set{"site": "fra", "tier": "prod", "rack": "a1"}
	muc := Set{"site": "muc", "tier": "test"}
	none := Set{}
	cases := []struct {
		sel              string
		fra, muc, noneOK bool
	}{
		{"", true, true, true},
		{"site=fra", true, false, false},
		{"site==fra", true, false, false},
		{"site!=fra", false, true, true},
		{"site in (fra, muc)", true, true, false},
		{"site notin (fra)", false, true, true},
		{"rack", true, false, false},
		{"!rack", false, true, true},
		{"site=fra,tier=prod", true, false, false},
		{"site in (fra,muc),tier!=test", true, false, false},
	}
	for _, c := range cases {
		sel, err := ParseSelector(c.sel)
		if err != nil {
			t.Fatalf("%q: %v", c.sel, err)
		}
		if sel.Matches(fra) != c.fra || sel.Matches(muc) != c.muc || sel.Matches(none) != c.noneOK {
			t.Errorf("%q: fra %v muc %v none %v", c.sel, sel.Matches(fra), sel.Matches(muc), sel.Matches(none))
		}
		again, err := ParseSelector(sel.String())
		if err != nil || again.String() != sel.String() {
			t.Errorf("%q: canonical form %q does not parse back: %v", c.sel, sel.String(), err)
		}
	}
	for _, bad := range []string{"site=", "site in fra", "site in (fra", "site on (a)", ",", "site=fra,", "a b", "site in ((a))", "=x", strings.Repeat("a", 2000)} {
		if bad == "site=" {
			continue // an empty value is allowed: site= selects site with value ""
		}
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// FuzzParseSelector: any input either fails with an error or gives a
// selector whose canonical form parses to the same selector.
func FuzzParseSelector(f *testing.F) {
	for _, s := range []string{"site=fra", "a!=b,c in (d,e)", "!x", "k notin (a)", "x,y", "a=(", "((", "a in (,)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sel, err := ParseSelector(s)
		if err != nil {
			if len(err.Error()) > 600 {
				t.Fatalf("error too long: %d bytes", len(err.Error()))
			}
			return
		}
		again, err := ParseSelector(sel.String())
		if err != nil {
			t.Fatalf("canonical %q of %q does not parse: %v", sel.String(), s, err)
		}
		if again.String() != sel.String() {
			t.Fatalf("canonical form not stable: %q -> %q", sel.String(), again.String())
		}
		_ = sel.Matches(Set{"a": "b"})
	})
}

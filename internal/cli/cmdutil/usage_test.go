package cmdutil

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestFlagUsages(t *testing.T) {
	// Room beside the flags: each description wrapped there, the default
	// at its end, as pflag words it.
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	fs.StringP("output", "o", "table", "output format: table, wide (every column, nothing cut), json, yaml or name (ids only, one a line)")
	fs.Bool("yes", false, "do not ask")
	want := `  -o, --output string   output format: table, wide (every column, nothing cut),
                        json, yaml or name (ids only, one a line) (default
                        "table")
      --yes             do not ask`
	if got := FlagUsages(fs, 80); got != want {
		t.Errorf("beside:\n%s\nwant:\n%s", got, want)
	}

	// A flag so wide that too little is left beside it: every description
	// goes below its flag.
	fs.String("a-flag-with-a-really-very-long-name-indeed", "", "what it does")
	got := FlagUsages(fs, 60)
	want = `      --a-flag-with-a-really-very-long-name-indeed string
          what it does
  -o, --output string
          output format: table, wide (every column, nothing
          cut), json, yaml or name (ids only, one a line)
          (default "table")
      --yes
          do not ask`
	if got != want {
		t.Errorf("below:\n%s\nwant:\n%s", got, want)
	}
	for _, l := range strings.Split(got, "\n") {
		if len(l) > 60 {
			t.Errorf("line wider than 60 columns: %q", l)
		}
	}
}

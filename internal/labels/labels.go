// Package labels holds key/value labels of pairing codes and enrollments
// (docs/fleet.md) and a small parser of label selectors in kubectl's syntax:
// k=v, k==v, k!=v, k in (a,b), k notin (a,b), k (exists) and !k (absent),
// joined by commas, all of which must hold.
//
// Keys are an optional DNS-like prefix and a slash, then a name: 1-63
// letters, digits, '-', '_' or '.', starting and ending with a letter or
// digit. Values are empty or the same form. Both are bounded (see
// internal/contract), so a label is safe to store, log and echo.
package labels

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/oma-enroll/oma-enroll/internal/contract"
)

// Set is a set of labels, key to value.
type Set map[string]string

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	prefixRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)
)

// quote shows an outsider's string bounded and printable in an error.
func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strconv.QuoteToASCII(s)
}

// ValidateKey checks a label key.
func ValidateKey(k string) error {
	name := k
	if i := strings.IndexByte(k, '/'); i >= 0 {
		prefix := k[:i]
		name = k[i+1:]
		if len(prefix) == 0 || len(prefix) > contract.MaxLabelPrefixBytes || !prefixRE.MatchString(prefix) {
			return fmt.Errorf("label key %s: the prefix before '/' must be 1-%d lower-case letters, digits, '-' and '.' (a DNS name)", quote(k), contract.MaxLabelPrefixBytes)
		}
	}
	if len(name) == 0 || len(name) > contract.MaxLabelNameBytes || !nameRE.MatchString(name) {
		return fmt.Errorf("label key %s: use 1-%d letters, digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. site)", quote(k), contract.MaxLabelNameBytes)
	}
	return nil
}

// ValidateValue checks a label value (it may be empty).
func ValidateValue(v string) error {
	if v == "" {
		return nil
	}
	if len(v) > contract.MaxLabelValueBytes || !nameRE.MatchString(v) {
		return fmt.Errorf("label value %s: use at most %d letters, digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. fra)", quote(v), contract.MaxLabelValueBytes)
	}
	return nil
}

// Validate checks every key and value of s and their number.
func (s Set) Validate() error {
	if len(s) > contract.MaxLabels {
		return fmt.Errorf("too many labels (%d, at most %d)", len(s), contract.MaxLabels)
	}
	for _, k := range s.Keys() {
		if err := ValidateKey(k); err != nil {
			return err
		}
		if err := ValidateValue(s[k]); err != nil {
			return err
		}
	}
	return nil
}

// Keys returns the keys of s, sorted.
func (s Set) Keys() []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// String renders s as k=v,k2=v2 (sorted by key); "" for none.
func (s Set) String() string {
	parts := make([]string, 0, len(s))
	for _, k := range s.Keys() {
		parts = append(parts, k+"="+s[k])
	}
	return strings.Join(parts, ",")
}

// ParseArgs parses "k=v" arguments (repeated --label flags; one argument
// may also hold several, comma-separated) into a validated set.
func ParseArgs(args []string) (Set, error) {
	out := Set{}
	for _, a := range args {
		for _, p := range strings.Split(a, ",") {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			k, v, ok := strings.Cut(p, "=")
			if !ok {
				return nil, fmt.Errorf("label %s: write it as key=value (e.g. site=fra)", quote(p))
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if err := ValidateKey(k); err != nil {
				return nil, err
			}
			if err := ValidateValue(v); err != nil {
				return nil, err
			}
			if old, dup := out[k]; dup && old != v {
				return nil, fmt.Errorf("label key %s given twice with different values", quote(k))
			}
			out[k] = v
		}
	}
	if len(out) > contract.MaxLabels {
		return nil, fmt.Errorf("too many labels (%d, at most %d)", len(out), contract.MaxLabels)
	}
	return out, nil
}

// Encode stores s as a JSON object ("" for none): keys sorted, so equal
// sets store equally.
func (s Set) Encode() string {
	if len(s) == 0 {
		return ""
	}
	b, _ := json.Marshal(map[string]string(s))
	return string(b)
}

// Decode reads what Encode stored; a damaged column gives an error.
func Decode(text string) (Set, error) {
	if text == "" {
		return Set{}, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		return nil, errors.New("labels column is not a JSON object of strings")
	}
	return Set(m), nil
}

// Merge returns the union of the sets; later sets win on equal keys.
func Merge(sets ...Set) Set {
	out := Set{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

package labels

import (
	"fmt"
	"strings"

	"github.com/oma-enroll/oma-enroll/internal/contract"
)

// Op is the operator of one requirement.
type Op string

// The operators of a selector.
const (
	OpEquals    Op = "="
	OpNotEquals Op = "!="
	OpIn        Op = "in"
	OpNotIn     Op = "notin"
	OpExists    Op = "exists"
	OpNotExists Op = "!"
)

// Requirement is one condition of a selector.
type Requirement struct {
	Key    string
	Op     Op
	Values []string
}

// Selector is a conjunction of requirements; the empty selector matches
// everything.
type Selector []Requirement

// Empty reports whether sel selects everything.
func (sel Selector) Empty() bool { return len(sel) == 0 }

// Matches reports whether every requirement holds for s.
func (sel Selector) Matches(s Set) bool {
	for _, r := range sel {
		v, has := s[r.Key]
		switch r.Op {
		case OpEquals:
			if !has || v != r.Values[0] {
				return false
			}
		case OpNotEquals:
			// kubectl: k!=v also matches objects without k.
			if has && v == r.Values[0] {
				return false
			}
		case OpIn:
			if !has || !contains(r.Values, v) {
				return false
			}
		case OpNotIn:
			if has && contains(r.Values, v) {
				return false
			}
		case OpExists:
			if !has {
				return false
			}
		case OpNotExists:
			if has {
				return false
			}
		}
	}
	return true
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// String renders sel in canonical form (parsing it gives sel again).
func (sel Selector) String() string {
	parts := make([]string, 0, len(sel))
	for _, r := range sel {
		switch r.Op {
		case OpEquals, OpNotEquals:
			parts = append(parts, r.Key+string(r.Op)+r.Values[0])
		case OpIn, OpNotIn:
			parts = append(parts, r.Key+" "+string(r.Op)+" ("+strings.Join(r.Values, ",")+")")
		case OpExists:
			parts = append(parts, r.Key)
		case OpNotExists:
			parts = append(parts, "!"+r.Key)
		}
	}
	return strings.Join(parts, ",")
}

// ParseSelector parses a selector in kubectl's syntax, e.g.
// "site=fra,tier!=test,rack in (a1,a2),!legacy". An empty string selects
// everything.
func ParseSelector(text string) (Selector, error) {
	if len(text) > contract.MaxSelectorBytes {
		return nil, fmt.Errorf("label selector too long (%d bytes, at most %d)", len(text), contract.MaxSelectorBytes)
	}
	var sel Selector
	for _, part := range splitTop(text) {
		part = strings.TrimSpace(part)
		if part == "" {
			if strings.TrimSpace(text) == "" {
				break
			}
			return nil, fmt.Errorf("label selector %s: empty requirement (a stray comma?)", quote(text))
		}
		r, err := parseRequirement(part)
		if err != nil {
			return nil, err
		}
		sel = append(sel, r)
	}
	return sel, nil
}

// splitTop splits at commas outside parentheses.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func parseRequirement(p string) (Requirement, error) {
	bad := func(why string) (Requirement, error) {
		return Requirement{}, fmt.Errorf("label selector requirement %s: %s; use k=v, k!=v, k in (a,b), k notin (a,b), k or !k", quote(p), why)
	}
	if strings.HasPrefix(p, "!") && !strings.Contains(p, "=") {
		k := strings.TrimSpace(p[1:])
		if err := ValidateKey(k); err != nil {
			return Requirement{}, err
		}
		return Requirement{Key: k, Op: OpNotExists}, nil
	}
	if i := strings.Index(p, "!="); i >= 0 {
		return binary(p[:i], OpNotEquals, p[i+2:])
	}
	if i := strings.Index(p, "=="); i >= 0 {
		return binary(p[:i], OpEquals, p[i+2:])
	}
	if i := strings.Index(p, "="); i >= 0 {
		return binary(p[:i], OpEquals, p[i+1:])
	}
	if open := strings.IndexByte(p, '('); open >= 0 {
		if !strings.HasSuffix(p, ")") {
			return bad("a set must end with ')'")
		}
		head := strings.Fields(p[:open])
		if len(head) != 2 || (head[1] != string(OpIn) && head[1] != string(OpNotIn)) {
			return bad("a set needs 'key in (…)' or 'key notin (…)'")
		}
		if err := ValidateKey(head[0]); err != nil {
			return Requirement{}, err
		}
		inner := p[open+1 : len(p)-1]
		if strings.ContainsAny(inner, "()") {
			return bad("sets do not nest")
		}
		var vals []string
		for _, v := range strings.Split(inner, ",") {
			v = strings.TrimSpace(v)
			if err := ValidateValue(v); err != nil {
				return Requirement{}, err
			}
			if !contains(vals, v) {
				vals = append(vals, v)
			}
		}
		if len(vals) > contract.MaxLabels*4 {
			return bad("too many values")
		}
		return Requirement{Key: head[0], Op: Op(head[1]), Values: vals}, nil
	}
	if strings.ContainsAny(p, " \t)") {
		return bad("not understood")
	}
	if err := ValidateKey(p); err != nil {
		return Requirement{}, err
	}
	return Requirement{Key: p, Op: OpExists}, nil
}

func binary(k string, op Op, v string) (Requirement, error) {
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	if err := ValidateKey(k); err != nil {
		return Requirement{}, err
	}
	if err := ValidateValue(v); err != nil {
		return Requirement{}, err
	}
	return Requirement{Key: k, Op: op, Values: []string{v}}, nil
}

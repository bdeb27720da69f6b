package enroll

import (
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

var (
	nameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,62}[A-Za-z0-9._-]$|^[A-Za-z0-9]$`)
	versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]{0,63}$`)
	idRE      = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	actorRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
)

// ValidateName checks a VMA name: 1–64 characters of letters, digits, space,
// dot, underscore and dash, starting with a letter or digit.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return Errorf(CodeInvalidRequest, "vma_name %q is not valid: use 1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit", Printable(name))
	}
	return nil
}

// ValidateVersion checks a VMA version: empty, or 1–64 characters of
// letters, digits and . _ + ~ -.
func ValidateVersion(v string) error {
	if v != "" && !versionRE.MatchString(v) {
		return Errorf(CodeInvalidRequest, "vma_version %q is not valid: use up to 64 letters, digits, '.', '_', '+', '~' or '-'", Printable(v))
	}
	return nil
}

// ValidateActorName checks an admin token name.
func ValidateActorName(n string) error {
	if !actorRE.MatchString(n) {
		return Errorf(CodeInvalidRequest, "token name %q is not valid: use 1-64 letters, digits, '.', '_', '@' or '-'", Printable(n))
	}
	return nil
}

// NormalizeID checks that id is an enrollment id (a UUID) and lower-cases it.
func NormalizeID(id string) (string, error) {
	id = strings.ToLower(strings.TrimSpace(id))
	if !idRE.MatchString(id) {
		return "", Errorf(CodeInvalidRequest, "%q is not an enrollment id (a UUID like 0b9d3c4e-…)", Printable(id))
	}
	return id, nil
}

// ValidateText checks free text (notes, reasons): valid UTF-8, no control
// characters, at most max bytes.
func ValidateText(field, s string, max int) error {
	if len(s) > max {
		return Errorf(CodeInvalidRequest, "%s is too long (%d bytes, at most %d)", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return Errorf(CodeInvalidRequest, "%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			return Errorf(CodeInvalidRequest, "%s contains a control character; use plain text on one line", field)
		}
	}
	return nil
}

// ValidateTTL checks a pairing-code lifetime against the bounds.
func ValidateTTL(ttl, max time.Duration) error {
	if ttl < time.Minute || ttl > max {
		return Errorf(CodeInvalidRequest, "ttl %s is out of range: use 1m to %s", ttl, max)
	}
	return nil
}

// Printable makes s safe to echo in a message or a terminal: invalid bytes,
// control and other non-printing characters become '?', and the result is
// cut to 80 bytes.
func Printable(s string) string {
	return Sanitize(s, 80)
}

// Sanitize is Printable with a limit of n bytes (a rune cut in half
// becomes '?', so the result is never longer than n).
func Sanitize(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || (!unicode.IsPrint(r) && r != ' ') {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

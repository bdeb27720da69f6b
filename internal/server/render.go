package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
)

// writeJSON renders v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	buf := jsonBuffers.Get().(*bytes.Buffer)
	defer putJSONBuffer(buf)
	buf.Reset()
	// Encode writes what Marshal would, and the newline, into a buffer
	// that is used again: the active list of ten thousand VMAs (4.7 MB)
	// costs no fresh memory per request (bench row 5).
	if err := json.NewEncoder(buf).Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"code":"internal","message":"internal error"}}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// The length lets a client read the answer into one buffer.
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// jsonBuffers recycles writeJSON's buffers; one over maxPooledJSON is
// dropped rather than kept.
var jsonBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledJSON = 16 << 20

func putJSONBuffer(b *bytes.Buffer) {
	if b.Cap() <= maxPooledJSON {
		jsonBuffers.Put(b)
	}
}

// writeError renders err as the JSON error envelope. Errors without a code
// are internal: the client gets a generic message, the log gets the cause.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code := enroll.ErrorCode(err)
	msg := enroll.ErrorMessage(err)
	var he *httpError
	switch {
	case errors.As(err, &he):
		code, msg = he.code, he.msg
	case code == enroll.CodeInternal && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		// The server is shutting down (or the database did not answer in
		// time): a retry elsewhere or later will do.
		code, msg = enroll.CodeUnavailable, "the server is shutting down or the database did not answer in time; try again"
	}
	status := api.HTTPStatus(code)
	if status >= 500 {
		s.log.Error("request failed", "request_id", requestID(r.Context()), "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	}
	writeJSON(w, status, api.ErrorBody{Error: api.ErrorDetail{Code: code, Message: msg}})
}

// httpError is an error that exists only at the HTTP layer.
type httpError struct {
	code enroll.Code
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return enroll.Errorf(enroll.CodeInvalidRequest, format, args...)
}

// decode reads one JSON object into v: body capped, unknown fields and
// trailing data rejected. With optional, an empty body leaves v as is.
func decode(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	if r.Body == nil {
		if optional {
			return nil
		}
		return badRequest("request body is empty: send a JSON object")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, api.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &httpError{code: api.CodeBodyTooLarge, msg: fmt.Sprintf("request body is larger than %d bytes", api.MaxBodyBytes)}
		}
		return badRequest("could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return badRequest("request body is empty: send a JSON object")
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return badRequest("Content-Type must be application/json, got %q", enroll.Printable(ct))
	}
	if !utf8.Valid(body) {
		return badRequest("request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("%s", describeJSONError(err))
	}
	if dec.More() {
		return badRequest("request body must hold exactly one JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("request body must hold exactly one JSON object")
	}
	if err := exactFields(body, v); err != nil {
		return badRequest("%s", err)
	}
	return nil
}

// exactFields checks the keys of the JSON object body against the json
// names of v's fields, exactly: encoding/json matches keys without regard
// to case and lets a repeated key override an earlier one, so "VMA_NAME",
// or a second "vma_name", would pass with a value a proxy or a log reader
// sees differently.
func exactFields(body []byte, v any) error {
	known := map[string]bool{}
	t := reflect.TypeOf(v).Elem()
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			known[name] = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil // not an object (null): Decode has judged it
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errors.New("malformed JSON")
		}
		key, _ := tok.(string)
		switch {
		case !known[key]:
			return fmt.Errorf("unknown field %q: field names are lower-case snake_case, as in the API", enroll.Printable(key))
		case seen[key]:
			return fmt.Errorf("field %q appears more than once", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return errors.New("malformed JSON")
		}
	}
	return nil
}

func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q must be a %s, not a JSON %s", te.Field, te.Type, te.Value)
		}
		return fmt.Sprintf("request body must be a JSON object, not a JSON %s", te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "malformed JSON: the body ends early"
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fmt.Sprintf("unknown field %s: check the field names of the API", enroll.Printable(strings.TrimPrefix(err.Error(), "json: unknown field ")))
	default:
		return "malformed JSON: " + enroll.Printable(err.Error())
	}
}

// notFound answers every path that is not served.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, enroll.Errorf(enroll.CodeNotFound, "no such endpoint: %s %s", r.Method, enroll.Printable(r.URL.Path)))
}

// canonicalOnly answers 404 for a path that is not in canonical form ("//",
// "/./", "/../"), which ServeMux would otherwise answer with a text/html
// redirect to the cleaned path: every path not served is a JSON 404.
func (s *Server) canonicalOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.EscapedPath()
		clean := path.Clean(p)
		if strings.HasSuffix(p, "/") && clean != "/" {
			clean += "/"
		}
		if p != clean && r.Method != http.MethodConnect {
			s.notFound(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// methods restricts a handler to some methods; others get 405 with Allow.
func (s *Server) methods(h http.HandlerFunc, allowed ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, m := range allowed {
			if r.Method == m || (m == http.MethodGet && r.Method == http.MethodHead) {
				h(w, r)
				return
			}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		s.writeError(w, r, &httpError{code: api.CodeMethodNotAllowed, msg: fmt.Sprintf("method %s is not allowed here; use %s", enroll.Printable(r.Method), strings.Join(allowed, " or "))})
	}
}

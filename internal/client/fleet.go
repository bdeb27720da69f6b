package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/oma-enroll/oma-enroll/internal/api"

	"github.com/go-resty/resty/v2"
)

// Fleet calls (docs/fleet.md).

// PendingSelected lists enrollments awaiting approval whose labels match
// selector (kubectl syntax; empty: all).
func (c *Client) PendingSelected(ctx context.Context, selector string) ([]api.Enrollment, error) {
	var out api.EnrollmentList
	err := c.call(ctx, http.MethodGet, api.PathPending, true, 0, func(r *resty.Request) {
		setIf(r, "selector", selector)
	}, &out)
	if err != nil {
		return nil, err
	}
	return nonNil(out.Enrollments), nil
}

// ActiveSelected lists approved VMAs whose labels match selector.
func (c *Client) ActiveSelected(ctx context.Context, selector string) ([]api.Connection, error) {
	return c.ActiveFiltered(ctx, selector, "")
}

// ActiveFilteredJSON is ActiveFiltered's list as the server sent it: a
// JSON array of api.Connection, for a caller that prints JSON. Decoding
// and encoding again ten thousand VMAs costs more than the request.
func (c *Client) ActiveFilteredJSON(ctx context.Context, selector, keyStatus string) (json.RawMessage, error) {
	var out struct {
		Connections rawSpan `json:"connections"`
	}
	err := c.call(ctx, http.MethodGet, api.PathActive, true, 0, activeQuery(selector, keyStatus), &out)
	if err != nil {
		return nil, err
	}
	if len(out.Connections) == 0 || string(out.Connections) == "null" {
		return json.RawMessage("[]"), nil
	}
	if out.Connections[0] != '[' {
		return nil, &ProtocolError{Status: http.StatusOK, Err: errors.New("decode GET " + api.PathActive + " answer: connections is not a list")}
	}
	return json.RawMessage(out.Connections), nil
}

// rawSpan is a JSON value as it stands in the answer: json.Unmarshal hands
// an Unmarshaler its part of the input, where a json.RawMessage would be a
// copy (4.7 MB for ten thousand VMAs). encoding/json reserves the right to
// pass a buffer of its own instead (its documentation asks Unmarshalers to
// copy); it has passed the input's slice in every release, and a buffer it
// reused within the call would show in TestAnswerBodies' content checks.
type rawSpan []byte

func (r *rawSpan) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

// activeQuery sets the active list's filters (empty: not sent).
func activeQuery(selector, keyStatus string) func(*resty.Request) {
	return func(r *resty.Request) {
		setIf(r, "selector", selector)
		setIf(r, "key_status", keyStatus)
	}
}

// ActiveFiltered lists the approved VMAs matching a label selector and
// whose key status is one of keyStatus (comma-separated: ok, due,
// overdue, expired); empty strings match everything.
func (c *Client) ActiveFiltered(ctx context.Context, selector, keyStatus string) ([]api.Connection, error) {
	var out api.ConnectionList
	err := c.call(ctx, http.MethodGet, api.PathActive, true, 0, activeQuery(selector, keyStatus), &out)
	if err != nil {
		return nil, err
	}
	if out.Connections == nil {
		out.Connections = []api.Connection{}
	}
	return out.Connections, nil
}

// PairingCodes lists issued pairing codes (usable ones, or all).
func (c *Client) PairingCodes(ctx context.Context, all bool) ([]api.PairingCodeInfo, error) {
	var out api.PairingCodeList
	err := c.call(ctx, http.MethodGet, api.PathPairingCodes, true, 0, func(r *resty.Request) {
		if all {
			r.SetQueryParam("all", "true")
		}
	}, &out)
	if err != nil {
		return nil, err
	}
	if out.PairingCodes == nil {
		out.PairingCodes = []api.PairingCodeInfo{}
	}
	return out.PairingCodes, nil
}

// RevokePairingCode withdraws a pairing code by id.
func (c *Client) RevokePairingCode(ctx context.Context, id string) (*api.PairingCodeInfo, error) {
	var out api.PairingCodeInfo
	if err := c.call(ctx, http.MethodPost, api.PathPairingCodeRevoke+url.PathEscape(id), true, 0, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Bulk decides several enrollments at once (action approve, reject or
// revoke; text is the notes or the reason). Each item is decided on its
// own; the answer has a result per id.
func (c *Client) Bulk(ctx context.Context, action string, ids []string, text string) (*api.BulkResponse, error) {
	req := api.BulkRequest{IDs: ids}
	if action == "approve" {
		req.Notes = text
	} else {
		req.Reason = text
	}
	var out api.BulkResponse
	// Many items take a while: a second of extra time per 50.
	extra := time.Duration(len(ids)/50+1) * time.Second
	err := c.call(ctx, http.MethodPost, api.PathBulk+url.PathEscape(action), true, extra, func(r *resty.Request) {
		r.SetBody(req)
	}, &out)
	if err != nil {
		return nil, err
	}
	return &out, nil
}

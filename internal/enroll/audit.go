package enroll

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// AuditMAC computes the chained MAC of ev: HMAC-SHA256 keyed by key over the
// canonical encoding of its content and ev.PrevMAC.
func AuditMAC(key []byte, ev *AuditEvent) string {
	m := hmac.New(sha256.New, key)
	field := func(s string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	field("vma-audit-v1")
	field(fmt.Sprint(ev.ID))
	eid := ""
	if ev.EnrollmentID != nil {
		eid = *ev.EnrollmentID
	}
	field(eid)
	field(string(ev.EventType))
	field(ev.VMAName)
	field(ev.VMAFingerprint)
	field(ev.SourceIP)
	field(ev.UserAgent)
	field(ev.ApprovedBy)
	field(ev.EventDetails)
	field(ev.CreatedAt.UTC().Format(time.RFC3339Nano))
	field(ev.PrevMAC)
	return hex.EncodeToString(m.Sum(nil))
}

// ChainBreak describes the first audit row where the chain does not hold.
type ChainBreak struct {
	ID     int64  `json:"id"`
	Reason string `json:"reason"`
}

// ChainReport is the result of verifying the audit chain.
type ChainReport struct {
	OK      bool        `json:"ok"`
	Checked int64       `json:"checked"`
	HeadID  int64       `json:"head_id"`
	Break   *ChainBreak `json:"break,omitempty"`
}

// audit adds ev to the chain inside the operation's transaction. It stamps
// the id, the time and the MACs.
func (o *op) audit(ev *AuditEvent, details map[string]any) error {
	lastID, lastMAC, err := o.tx.LockAuditHead(o.ctx)
	if err != nil {
		return err
	}
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			return fmt.Errorf("encode audit details: %w", err)
		}
		ev.EventDetails = string(b)
	} else if ev.EventDetails == "" {
		ev.EventDetails = "{}"
	}
	ev.ID = lastID + 1
	ev.CreatedAt = o.now
	ev.PrevMAC = lastMAC
	ev.MAC = AuditMAC(o.s.AuditKey, ev)
	if err := o.tx.InsertAudit(o.ctx, ev); err != nil {
		return err
	}
	o.events = append(o.events, ev)
	return nil
}

// VerifyAudit walks the whole audit chain and reports the first row whose
// MAC, predecessor link or position does not hold, and whether rows at the
// end were removed (the head records more than the table holds).
func (s *Service) VerifyAudit(ctx context.Context) (*ChainReport, error) {
	headID, headMAC, err := s.Store.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	rep := &ChainReport{OK: true, HeadID: headID}
	var prevID int64
	prevMAC := ""
	for {
		page, err := s.Store.ListAudit(ctx, AuditFilter{After: prevID, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for i := range page {
			ev := &page[i]
			rep.Checked++
			reason := ""
			switch {
			case ev.ID != prevID+1:
				reason = fmt.Sprintf("rows %d to %d are missing", prevID+1, ev.ID-1)
			case ev.PrevMAC != prevMAC:
				reason = "link to the previous row does not match (rows removed or reordered)"
			case !hmac.Equal([]byte(ev.MAC), []byte(AuditMAC(s.AuditKey, ev))):
				reason = "content does not match its MAC (row was altered)"
			}
			if reason != "" {
				rep.OK = false
				rep.Break = &ChainBreak{ID: ev.ID, Reason: reason}
				return rep, nil
			}
			prevID, prevMAC = ev.ID, ev.MAC
		}
		if len(page) < 1000 {
			break
		}
	}
	if prevID != headID || prevMAC != headMAC {
		rep.OK = false
		rep.Break = &ChainBreak{ID: prevID + 1, Reason: fmt.Sprintf("the chain head records row %d but the newest row is %d (rows at the end were removed)", headID, prevID)}
	}
	return rep, nil
}

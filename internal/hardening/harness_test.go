package hardening_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	_ "modernc.org/sqlite" // raw access to the server's SQLite file

	"github.com/oma-enroll/oma-enroll/internal/api"
	"github.com/oma-enroll/oma-enroll/internal/app"
	"github.com/oma-enroll/oma-enroll/internal/enroll"
	"github.com/oma-enroll/oma-enroll/internal/sshkey"
	"github.com/oma-enroll/oma-enroll/internal/store"
	"github.com/oma-enroll/oma-enroll/internal/testbin"
	"github.com/oma-enroll/oma-enroll/internal/testdb"
)

// mysqlEnv names the MariaDB DSN of the tests (a root connection).
const mysqlEnv = testdb.Env

// mysqlBase returns the DSN of the shared MariaDB. Without it the test is
// skipped on a developer machine, and fails in CI, where nothing may be
// skipped.
func mysqlBase(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv(mysqlEnv)
	if dsn == "" {
		testbin.Missing(t, "%s is not set: the MariaDB tests need it (.ci/run sets it)", mysqlEnv)
	}
	return dsn
}

// freshMySQL creates an empty database on the MariaDB of base (the private
// one of the lost-database test) for one test and returns its DSN.
func freshMySQL(t *testing.T, base string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(base)
	if err != nil {
		t.Fatalf("%s: %v", mysqlEnv, err)
	}
	var b [6]byte
	rand.Read(b[:])
	name := "oma_hard_" + hex.EncodeToString(b[:]) // [a-z0-9_] only: safe in DDL
	root := cfg.Clone()
	root.DBName = ""
	db, err := sql.Open("mysql", root.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"); err != nil {
		t.Fatalf("create the test database (is MariaDB running?): %v", err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", root.FormatDSN())
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec("DROP DATABASE IF EXISTS " + name)
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

// storeDSN returns a DSN for a fresh database of driver.
func storeDSN(t *testing.T, driver string) string {
	t.Helper()
	if driver == store.DriverMySQL {
		mysqlBase(t) // fails in CI when unset
		return testdb.MySQL(t)
	}
	return filepath.Join(t.TempDir(), "oma.db")
}

// openRaw opens a plain database/sql handle on the server's database, to
// look at and tamper with what the server stored.
func openRaw(t *testing.T, driver, dsn string) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	if driver == store.DriverMySQL {
		db, err = sql.Open("mysql", rawMySQLDSN(t, dsn))
	} else {
		db, err = sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rawMySQLDSN is dsn with parseTime off, whatever the DSN the tests were
// given (a "?parseTime=true" one included): the raw handle reads times as
// the text MariaDB stores, so what it reads it can write back unchanged.
func rawMySQLDSN(t *testing.T, dsn string) string {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("%s: %v", mysqlEnv, err)
	}
	cfg.ParseTime = false
	return cfg.FormatDSN()
}

// auditTables are the tables that bad input may change.
var auditTables = map[string]bool{"vma_connection_audit": true, "vma_audit_head": true}

// dumpDB renders every table but the audit ones as sorted lines.
func dumpDB(t *testing.T, db *sql.DB, driver string) map[string][]string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	if driver == store.DriverMySQL {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`
	}
	var tables []string
	rows, err := db.Query(q)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		if !auditTables[n] {
			tables = append(tables, n)
		}
	}
	rows.Close()
	if len(tables) < 4 {
		t.Fatalf("only tables %v: is the schema there?", tables)
	}
	out := map[string][]string{}
	for _, tb := range tables {
		rows, err := db.Query("SELECT * FROM " + tb)
		if err != nil {
			t.Fatalf("dump %s: %v", tb, err)
		}
		cols, _ := rows.Columns()
		lines := []string{}
		for rows.Next() {
			vals := make([]sql.RawBytes, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for i, v := range vals {
				if v == nil {
					fmt.Fprintf(&b, "%s=NULL|", cols[i])
				} else {
					fmt.Fprintf(&b, "%s=%q|", cols[i], v)
				}
			}
			lines = append(lines, b.String())
		}
		rows.Close()
		sort.Strings(lines)
		out[tb] = lines
	}
	return out
}

// diffDump describes how two dumps differ ("" when they are equal).
func diffDump(before, after map[string][]string) string {
	var b strings.Builder
	for tb, rows := range after {
		if strings.Join(rows, "\n") != strings.Join(before[tb], "\n") {
			fmt.Fprintf(&b, "table %s changed:\n  before: %v\n  after:  %v\n", tb, before[tb], rows)
		}
	}
	for tb := range before {
		if _, ok := after[tb]; !ok {
			fmt.Fprintf(&b, "table %s disappeared\n", tb)
		}
	}
	return b.String()
}

// resp is an HTTP answer, read in full.
type resp struct {
	status int
	header http.Header
	body   []byte
	err    error // transport error (then status is 0)
}

func (r resp) code() string {
	var eb api.ErrorBody
	json.Unmarshal(r.body, &eb)
	return string(eb.Error.Code)
}

func (r resp) String() string {
	if r.err != nil {
		return "transport error: " + r.err.Error()
	}
	return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body))
}

// apiClient talks to one server's admin (plain HTTP) and public (pinned
// TLS) listeners.
type apiClient struct {
	admin  string // http://host:port
	public string // https://host:port
	token  string // admin token
	fp     string
	hc     *http.Client
}

func newAPIClient(adminAddr, publicAddr, token, fp string) *apiClient {
	return &apiClient{admin: "http://" + adminAddr, public: "https://" + publicAddr, token: token, fp: fp, hc: testbin.PinnedClient(fp, 64)}
}

// req is one request to send.
type req struct {
	method, url string
	body        any // nil, string, []byte or a value to encode as JSON
	token       string
	header      map[string]string
}

// send performs r; it never fails the test, so goroutines may call it.
func (c *apiClient) send(r req) resp {
	var rd io.Reader
	switch b := r.body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	hr, err := http.NewRequest(r.method, r.url, rd)
	if err != nil {
		return resp{err: err}
	}
	if rd != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	res, err := c.hc.Do(hr)
	if err != nil {
		return resp{err: err}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (c *apiClient) adminDo(method, path string, body any) resp {
	return c.send(req{method: method, url: c.admin + path, body: body, token: c.token})
}

func (c *apiClient) publicDo(method, path string, body any, token string) resp {
	return c.send(req{method: method, url: c.public + path, body: body, token: token})
}

// pairingCode makes a code on the admin listener; errors are returned, not
// fatal, so that goroutines can call it.
func (c *apiClient) pairingCode() (string, error) {
	r := c.adminDo("POST", api.PathPairingCode, api.PairingCodeRequest{Note: "hardening"})
	if r.status != 201 {
		return "", fmt.Errorf("pairing-code: %s", r)
	}
	var pc api.PairingCodeResponse
	if err := json.Unmarshal(r.body, &pc); err != nil {
		return "", err
	}
	return pc.PairingCode, nil
}

func (c *apiClient) mustCode(t *testing.T) string {
	t.Helper()
	code, err := c.pairingCode()
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// vmaKey is a VMA's key pair and name.
type vmaKey struct {
	priv ed25519.PrivateKey
	pub  string // authorized_keys line
	name string
}

func newVMAKey(t testing.TB, name string) *vmaKey {
	pub, priv, err := sshkey.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &vmaKey{priv: priv, pub: sshkey.AuthorizedKey(pub, "hardening"), name: name}
}

// enrolled is the VMA side of an enrollment in progress.
type enrolled struct {
	id        string
	challenge []byte
	pollToken string
}

// enroll sends the enroll request; it returns the answer and, on 201, the
// decoded enrollment.
func (c *apiClient) enroll(v *vmaKey, code string, header map[string]string) (resp, *enrolled) {
	r := c.send(req{method: "POST", url: c.public + api.PathEnroll, header: header,
		body: api.EnrollRequest{PairingCode: code, VMAPublicKey: v.pub, VMAName: v.name, VMAVersion: "1.0"}})
	if r.status != 201 {
		return r, nil
	}
	var er api.EnrollResponse
	if err := json.Unmarshal(r.body, &er); err != nil {
		return resp{err: err}, nil
	}
	ch, err := base64.StdEncoding.DecodeString(er.Challenge)
	if err != nil || len(ch) != enroll.ChallengeSize {
		return resp{err: fmt.Errorf("challenge %q", er.Challenge)}, nil
	}
	return r, &enrolled{id: er.EnrollmentID, challenge: ch}
}

// verify signs the challenge with v's key and sends it.
func (c *apiClient) verify(v *vmaKey, e *enrolled) resp {
	sig := enroll.SignChallenge(v.priv, e.id, e.challenge)
	r := c.publicDo("POST", api.PathVerify, api.VerifyRequest{EnrollmentID: e.id, Signature: base64.StdEncoding.EncodeToString(sig)}, "")
	if r.status == 200 {
		var vr api.VerifyResponse
		json.Unmarshal(r.body, &vr)
		e.pollToken = vr.PollToken
	}
	return r
}

// enrollVerified runs the VMA side up to awaiting approval.
func (c *apiClient) enrollVerified(t *testing.T, v *vmaKey) *enrolled {
	t.Helper()
	r, e := c.enroll(v, c.mustCode(t), nil)
	if e == nil {
		t.Fatalf("enroll %s: %s", v.name, r)
	}
	if r := c.verify(v, e); r.status != 200 {
		t.Fatalf("verify %s: %s", v.name, r)
	}
	return e
}

func (c *apiClient) chainOK(t *testing.T) api.ChainReport {
	t.Helper()
	r := c.adminDo("GET", api.PathAuditVerify, nil)
	var rep api.ChainReport
	if r.status != 200 || json.Unmarshal(r.body, &rep) != nil {
		t.Fatalf("audit verify: %s", r)
	}
	if !rep.OK {
		t.Fatalf("audit chain broken: %s", r.body)
	}
	return rep
}

// auditEvents returns every audit event (in id order) through the admin API.
func (c *apiClient) auditEvents(t *testing.T, query string) []api.AuditEvent {
	t.Helper()
	var all []api.AuditEvent
	cursor := ""
	for {
		q := "?limit=1000" + query
		if cursor != "" {
			q += "&cursor=" + cursor
		}
		r := c.adminDo("GET", api.PathAudit+q, nil)
		var al api.AuditList
		if r.status != 200 || json.Unmarshal(r.body, &al) != nil {
			t.Fatalf("audit: %s", r)
		}
		all = append(all, al.Events...)
		if al.NextCursor == "" {
			return all
		}
		cursor = al.NextCursor
	}
}

func (c *apiClient) enrollments(t *testing.T) []api.Enrollment {
	t.Helper()
	r := c.adminDo("GET", api.PathEnrollments+"?limit=10000", nil)
	var l api.EnrollmentList
	if r.status != 200 || json.Unmarshal(r.body, &l) != nil {
		t.Fatalf("enrollments: %s", r)
	}
	return l.Enrollments
}

func decodeAs[T any](t *testing.T, r resp) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r, err)
	}
	return v
}

// env is an App (the one oma-server serve runs) running in-process over
// a real store, with no tunnel driver.
type env struct {
	*apiClient
	t      *testing.T
	app    *app.App
	svc    *enroll.Service
	db     *store.DB
	raw    *sql.DB
	driver string
	dsn    string
	log    *testbin.Buffer
	cancel context.CancelFunc
	done   chan struct{}
}

// envOpts configures an in-process server.
type envOpts struct {
	driver string            // sqlite (default) or mysql
	dsn    string            // an existing database (migrated); default fresh
	cfg    func(*app.Config) // after the test defaults (generous limits)
	svc    enroll.Config
	now    func() time.Time
}

var testAuditKey = bytes.Repeat([]byte{0x5a}, 32)

func startEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	if o.driver == "" {
		o.driver = store.DriverSQLite
	}
	ctx := context.Background()
	if o.dsn == "" {
		o.dsn = storeDSN(t, o.driver)
	}
	logBuf := &testbin.Buffer{}
	log := slog.New(slog.NewTextHandler(logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.svc.PollInterval == 0 {
		o.svc.PollInterval = 50 * time.Millisecond
	}
	cfg := app.Config{
		DataDir: t.TempDir(), Driver: o.driver, DSN: o.dsn, Log: log,
		AuditKey: testAuditKey, SkipFirstAdminToken: true,
		Service: o.svc, Now: o.now,
		AdminListen: "127.0.0.1:0", PublicListen: "127.0.0.1:0", PublicHost: "127.0.0.1",
		RatePerSecond: 10000, RateBurst: 10000, CodeFailuresPerMinute: 600000, CodeFailureBurst: 10000,
		Tunnel: app.TunnelConfig{Mode: "none", HostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHardeningHostKey"},
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	a, err := app.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	svc, db := a.Service(), a.Store()
	e := &env{t: t, app: a, svc: svc, db: db, driver: o.driver, dsn: o.dsn, log: logBuf, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		if err := a.Run(runCtx); err != nil {
			t.Errorf("server Run: %v", err)
		}
	}()
	<-a.Ready()
	t.Cleanup(func() {
		cancel()
		<-e.done
		a.Close()
		if t.Failed() {
			t.Logf("server log (last 4 KiB):\n%s", tail(logBuf.String(), 4<<10))
		}
	})
	tok, err := svc.CreateAdminToken(ctx, fmt.Sprintf("hardening-%d", time.Now().UnixNano()%1e6))
	if err != nil {
		t.Fatal(err)
	}
	e.apiClient = newAPIClient(a.AdminAddr(), a.PublicAddr(), tok.Reveal(), a.Fingerprint())
	e.raw = openRaw(t, o.driver, o.dsn)
	return e
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// drivers are the stores the in-process tests run on.
var drivers = []string{store.DriverSQLite, store.DriverMySQL}

// forEachDriver runs fn as a parallel subtest per store.
func forEachDriver(t *testing.T, fn func(t *testing.T, driver string)) {
	for _, d := range drivers {
		t.Run(d, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

// eventually retries cond every 50ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testbin.Eventually(t, timeout, what, cond)
}

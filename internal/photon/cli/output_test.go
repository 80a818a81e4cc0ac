package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

func TestShowListTable(t *testing.T) {
	var buf bytes.Buffer
	p, err := newPrinter(&buf, "")
	if err != nil {
		t.Fatal(err)
	}
	roles := []*aegisv1.Role{
		{Name: "roles/ProjectAdmin", BuiltIn: true, Permissions: []string{"a:b:c", "a:b:d"}},
		{Name: "orgs/acme/roles/Deployer", DisplayName: "Deploy\nbot"},
	}
	if err := showList(p, roles, roleColumns()); err != nil {
		t.Fatal(err)
	}
	want := `NAME                      DISPLAY NAME  BUILT-IN  PERMISSIONS
roles/ProjectAdmin        -             yes       2
orgs/acme/roles/Deployer  Deploy?bot    no        0
`
	if buf.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestShowJSON(t *testing.T) {
	var buf bytes.Buffer
	p, _ := newPrinter(&buf, formatJSON)
	if err := showList(p, []*aegisv1.Role{}, roleColumns()); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "[]\n" {
		t.Fatalf("empty list: %q", buf.String())
	}
	buf.Reset()
	b := &aegisv1.Binding{Name: "system/bindings/b", Effect: aegisv1.Binding_EFFECT_DENY, CreateTime: timestamppb.New(mustTime("2026-11-27T10:00:00Z"))}
	if err := showOne(p, b, bindingDetail()); err != nil {
		t.Fatal(err)
	}
	want := `{
  "name": "system/bindings/b",
  "effect": "EFFECT_DENY",
  "createTime": "2026-11-27T10:00:00Z"
}
`
	if buf.String() != want {
		t.Fatalf("got:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func TestFormatters(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{fmtEnum("STATE_ACTIVE", "STATE_"), "active"},
		{fmtEnum("STATE_UNSPECIFIED", "STATE_"), ""},
		{fmtLabels(map[string]string{"b": "2", "a": "1"}), "a=1,b=2"},
		{fmtTime(nil), ""},
		{cell(""), "-"},
		{cell("a\x1b]0;pwned\x07b"), "a?]0;pwned?b"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   int
		stderr string
	}{
		{nil, 0, ""},
		{errors.New("boom"), 1, "photon: boom\n"},
		{&exitCodeError{code: 1}, 1, ""},
		{withExitCode(2, errors.New("bad")), 2, "photon: bad\n"},
		{fmt.Errorf("wrapped: %w", &exitCodeError{code: 2, err: errors.New("x")}), 2, "photon: wrapped: x\n"},
		{withExitCode(2, &exitCodeError{code: 1}), 1, ""}, // the inner choice stands
	} {
		var buf bytes.Buffer
		if code := exitStatus(tc.err, &buf); code != tc.code || buf.String() != tc.stderr {
			t.Errorf("%v: exit %d %q, want %d %q", tc.err, code, buf.String(), tc.code, tc.stderr)
		}
	}
	if withExitCode(2, nil) != nil {
		t.Fatal("nil error wrapped")
	}
}

func TestExplainRPC(t *testing.T) {
	for code, want := range map[codes.Code]string{
		codes.Unauthenticated:  "op: not authenticated: msg (run photon login)",
		codes.PermissionDenied: "op: permission denied: msg",
		codes.NotFound:         "op: not found (or not visible to you): msg",
		codes.Aborted:          "op: conflict: msg (it changed since it was read: get it again, or leave out --etag)",
		codes.Unavailable:      "op: cannot reach Aegis at 127.0.0.1:7010: msg",
		codes.DeadlineExceeded: "op: Aegis at 127.0.0.1:7010 did not answer in time (see --timeout)",
		codes.Internal:         "op: Internal: msg",
	} {
		err := explainRPC("op", "127.0.0.1:7010", status.Error(code, "msg"))
		if err.Error() != want || status.Code(err) != code {
			t.Errorf("%v: %q (code %v), want %q", code, err, status.Code(err), want)
		}
	}
	// The words of the code are not said twice.
	for _, tc := range []struct {
		code      codes.Code
		msg, want string
	}{
		{codes.NotFound, `not found: org "orgs/x"`, `op: not found (or not visible to you): org "orgs/x"`},
		{codes.AlreadyExists, `already exists: org "orgs/x"`, `op: already exists: org "orgs/x"`},
		{codes.FailedPrecondition, `failed precondition: org "orgs/x" still has 1 projects`, `op: refused: org "orgs/x" still has 1 projects`},
		{codes.InvalidArgument, `invalid argument: org id "X"`, `op: invalid request: org id "X"`},
		{codes.NotFound, `orgs/x not found`, `op: not found (or not visible to you): orgs/x not found`},
	} {
		if err := explainRPC("op", "e", status.Error(tc.code, tc.msg)); err.Error() != tc.want {
			t.Errorf("%v %q: %q, want %q", tc.code, tc.msg, err, tc.want)
		}
	}
	if explainRPC("op", "e", nil) != nil {
		t.Fatal("nil error explained")
	}
}

func TestListAll(t *testing.T) {
	// 7 items served in pages of at most 3.
	var sizes []int32
	fetch := func(_ context.Context, size int32, token string) ([]int, string, error) {
		sizes = append(sizes, size)
		start := 0
		if token != "" {
			fmt.Sscan(token, &start)
		}
		n := 3
		if size > 0 && int(size) < n {
			n = int(size)
		}
		var items []int
		for i := start; i < 7 && i < start+n; i++ {
			items = append(items, i)
		}
		next := ""
		if start+n < 7 {
			next = fmt.Sprint(start + n)
		}
		return items, next, nil
	}
	ctx := context.Background()
	for _, tc := range []struct {
		limit int
		n     int
		sizes string
	}{
		{0, 7, "[0 0 0]"},
		{5, 5, "[5 2]"},
		{2, 2, "[2]"},
		{7, 7, "[7 4 1]"},
	} {
		sizes = nil
		got, err := listAll(ctx, tc.limit, fetch)
		if err != nil || len(got) != tc.n || fmt.Sprint(sizes) != tc.sizes {
			t.Errorf("limit %d: %v (%v), page sizes %v, want %d items, sizes %s", tc.limit, got, err, sizes, tc.n, tc.sizes)
		}
	}
	// A server that hands out the same token again cannot loop forever.
	loop := func(context.Context, int32, string) ([]int, string, error) { return []int{1}, "again", nil }
	if _, err := listAll(ctx, 0, loop); err == nil || !strings.Contains(err.Error(), "repeated a page token") {
		t.Fatalf("looping server: %v", err)
	}
	boom := status.Error(codes.Internal, "boom")
	fail := func(context.Context, int32, string) ([]int, string, error) { return nil, "", boom }
	if _, err := listAll(ctx, 0, fail); !errors.Is(err, boom) {
		t.Fatalf("error: %v", err)
	}
	// Large limits ask for at most a full page.
	sizes = nil
	if _, err := listAll(ctx, 5000, fetch); err != nil || sizes[0] != maxPageSize {
		t.Fatalf("limit 5000: first page size %v", sizes)
	}
}

func TestResolveTarget(t *testing.T) {
	saved := &credentialsFile{Current: "https://aegis.example.com:7011", Profiles: map[string]*profile{
		"https://aegis.example.com:7011": {AegisEndpoint: "aegis.example.com:7010", CACert: "/etc/ca.pem"},
		"http://127.0.0.1:7011":          {AegisEndpoint: "127.0.0.1:9999"},
	}}
	env := func(kv ...string) cliEnv {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return cliEnv{getenv: func(k string) string { return m[k] }, now: time.Now}
	}
	parse := func(args ...string) *connOptions {
		o := &connOptions{}
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		addConnFlags(fs, o)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		return o
	}
	for _, tc := range []struct {
		name string
		args []string
		env  cliEnv
		file *credentialsFile
		want target
		err  string
	}{
		{name: "defaults", env: env(), file: &credentialsFile{},
			want: target{url: "http://127.0.0.1:7011", endpoint: "127.0.0.1:7010"}},
		{name: "last login", env: env(), file: saved,
			want: target{url: "https://aegis.example.com:7011", endpoint: "aegis.example.com:7010", cacert: "/etc/ca.pem"}},
		{name: "env url picks its profile", env: env(envAegisURL, "http://127.0.0.1:7011/"), file: saved,
			want: target{url: "http://127.0.0.1:7011", endpoint: "127.0.0.1:9999"}},
		{name: "flag beats env", args: []string{"--aegis-endpoint", "127.0.0.1:1"}, env: env(envAegisURL, "http://LOCALHOST:7011", envAegisEndpoint, "127.0.0.1:2"), file: saved,
			want: target{url: "http://localhost:7011", endpoint: "127.0.0.1:1"}},
		{name: "env beats profile", env: env(envAegisEndpoint, "aegis.example.com:1", envCACert, "/ca2.pem"), file: saved,
			want: target{url: "https://aegis.example.com:7011", endpoint: "aegis.example.com:1", cacert: "/ca2.pem"}},
		{name: "plaintext grpc off loopback", env: env(), args: []string{"--aegis-endpoint", "10.0.0.1:7010"}, file: &credentialsFile{},
			err: "refusing plaintext gRPC to 10.0.0.1:7010"},
		{name: "insecure allows it", env: env(envInsecure, "true"), args: []string{"--aegis-url", "http://10.0.0.1:7011", "--aegis-endpoint", "10.0.0.1:7010"}, file: &credentialsFile{},
			want: target{url: "http://10.0.0.1:7011", endpoint: "10.0.0.1:7010", insecure: true}},
		{name: "bad insecure env", env: env(envInsecure, "maybe"), file: &credentialsFile{}, err: envInsecure},
		{name: "url with query", args: []string{"--aegis-url", "http://127.0.0.1:7011/?x=1"}, env: env(), file: &credentialsFile{}, err: "must not have"},
		{name: "zero timeout", args: []string{"--timeout", "0s"}, env: env(), file: &credentialsFile{}, err: "--timeout must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parse(tc.args...).resolve(tc.env, tc.file)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			tc.want.timeout = defaultTimeout
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestLoginRequest(t *testing.T) {
	for _, tc := range []struct {
		o            loginOptions
		user, scope  string
		errSubstring string
	}{
		{o: loginOptions{username: "admin"}, user: "admin"},
		{o: loginOptions{username: "alice@acme"}, user: "orgs/acme/users/alice"},
		{o: loginOptions{username: "orgs/acme/users/alice", org: "acme"}, user: "orgs/acme/users/alice"},
		{o: loginOptions{username: "alice", org: "orgs/acme", project: "web"}, user: "orgs/acme/users/alice", scope: "orgs/acme/projects/web"},
		{o: loginOptions{username: "alice", project: "orgs/acme/projects/web"}, user: "alice", scope: "orgs/acme/projects/web"},
		{o: loginOptions{username: "alice@"}, errSubstring: "want alice"},
		{o: loginOptions{username: "orgs/acme/alice"}, errSubstring: "want alice"},
		{o: loginOptions{username: "alice", org: "a/b"}, errSubstring: "--org"},
	} {
		req, err := tc.o.request()
		if tc.errSubstring != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errSubstring) {
				t.Errorf("%+v: err %v, want %q", tc.o, err, tc.errSubstring)
			}
			continue
		}
		if err != nil || req.username != tc.user || req.scope != tc.scope {
			t.Errorf("%+v: %+v, %v", tc.o, req, err)
		}
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{must(bindingContainer("system")), "system"},
		{must(bindingContainer("orgs/acme")), "orgs/acme"},
		{must(bindingContainer("orgs/acme/users/alice")), "orgs/acme"},
		{must(bindingContainer("orgs/acme/projects/web")), "orgs/acme/projects/web"},
		{must(bindingContainer("orgs/acme/projects/web/zones/example.com/records/www")), "orgs/acme/projects/web"},
		{bindingRole("ProjectAdmin"), "roles/ProjectAdmin"},
		{bindingRole("orgs/acme/roles/Dev"), "orgs/acme/roles/Dev"},
		{must(roleName("Dev", &parentFlags{org: "acme"})), "orgs/acme/roles/Dev"},
		{must(roleName("OrgViewer", &parentFlags{})), "roles/OrgViewer"},
		{must(memberName("orgs/acme/groups/devs", "bob")), "orgs/acme/users/bob"},
		{must(memberName("orgs/acme/groups/devs", "orgs/acme/serviceAccounts/ci")), "orgs/acme/serviceAccounts/ci"},
		{must((&parentFlags{org: "acme", project: "web"}).container()), "orgs/acme/projects/web"},
		{must((&parentFlags{project: "orgs/acme/projects/web"}).container()), "orgs/acme/projects/web"},
		{must(keyName(func(s string) (string, error) { return "orgs/acme/serviceAccounts/" + s, nil }, []string{"ci", "k1"})), "orgs/acme/serviceAccounts/ci/keys/k1"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if _, err := (&parentFlags{org: "acme", project: "orgs/x/projects/y"}).container(); err == nil {
		t.Error("--org with a full --project accepted")
	}
}

// TestWithScope: the project of a downscoped session fills in what
// --org and --project leave open, and nothing the user gave.
func TestWithScope(t *testing.T) {
	web := func() (string, error) { return "orgs/acme/projects/web", nil }
	none := func() (string, error) { return "", nil }
	broken := func() (string, error) { return "", errors.New("credentials file is corrupt") }
	for _, tc := range []struct{ got, want string }{
		{must((&parentFlags{scope: web}).orgName()), "orgs/acme"},
		{must((&parentFlags{scope: web}).container()), "orgs/acme/projects/web"},
		{must((&parentFlags{project: "api", scope: web}).container()), "orgs/acme/projects/api"},
		{must((&parentFlags{org: "zeta", scope: web}).container()), "orgs/zeta"},
		{must((&parentFlags{org: "acme", scope: web}).container()), "orgs/acme"},
		{must((&parentFlags{org: "zeta", project: "api", scope: web}).container()), "orgs/zeta/projects/api"},
		{must((&parentFlags{project: "orgs/zeta/projects/api", scope: web}).container()), "orgs/zeta/projects/api"},
		{must((&parentFlags{org: "zeta", scope: web}).orgName()), "orgs/zeta"},
		{must(roleName("ProjectAdmin", &parentFlags{scope: web})), "roles/ProjectAdmin"},
		{must((&parentFlags{scope: none}).orgName()), "error: --org is required (or give a full name)"},
		{must((&parentFlags{scope: broken}).container()), "error: credentials file is corrupt"},
		{must((&parentFlags{org: "acme", scope: broken}).container()), "orgs/acme"},
		{must((&projectFlags{parentFlags{scope: web}}).name()), "orgs/acme/projects/web"},
		{must((&projectFlags{parentFlags{project: "api", scope: web}}).name()), "orgs/acme/projects/api"},
		{must((&projectFlags{parentFlags{org: "zeta", project: "api", scope: web}}).name()), "orgs/zeta/projects/api"},
		{must((&projectFlags{parentFlags{org: "zeta", scope: web}}).name()),
			"error: --org and --project are required (or give --project orgs/<org>/projects/<project>, or a full zone name)"},
		{must((&projectFlags{parentFlags{scope: func() (string, error) { return "orgs/acme", nil }}}).name()),
			"error: --org and --project are required (or give --project orgs/<org>/projects/<project>, or a full zone name)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func must(s string, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return s
}

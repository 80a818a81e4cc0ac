package policy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGolden runs the scripts in testdata/*.txt. Each line is a statement
// applied in order (so scripts can test updates), or a check followed by
// its expected result on the next line:
//
//	principal users/alice org=acme [project=p] [disabled] [labels=k:v,k:v]
//	group groups/devs org=acme [members=users/a,serviceAccounts/b]
//	role orgs/acme/roles/x perm perm ...
//	binding <id> allow|deny <subject> <role> <scope> [expires=RFC3339] [if=<CEL, rest of line>]
//	delete binding|principal|group|role|member <name> [<member>]
//	check <principal> <permission> <resource> [ip=..] [time=RFC3339] [labels=k:v,..]
//	=> allow <binding> | deny <reason> [<binding>] | invalid
//	whocan <permission> <resource>
//	=> <principal>@<binding> ... | none
//
// With -update the expectations are rewritten from the actual results;
// review the diff before committing it.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	must(t, err)
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runGolden(t, f) })
	}
}

func runGolden(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	must(t, err)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	e := newTestEvaluator(t)
	var out []string
	failed := false
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		out = append(out, line)
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		fail := func(format string, args ...any) {
			t.Errorf("%s:%d: %s: %s", path, i+1, line, fmt.Sprintf(format, args...))
			failed = true
		}
		var got string
		switch fields[0] {
		case "check":
			got = goldenCheck(e, fields[1:])
		case "whocan":
			got = goldenWhoCan(e, fields[1:])
		default:
			if err := goldenApply(e, line, fields); err != nil {
				fail("%v", err)
			}
			continue
		}
		want := ""
		if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "=> ") {
			want = strings.TrimPrefix(lines[i+1], "=> ")
			i++
		}
		out = append(out, "=> "+got)
		if got != want && !*update {
			fail("got %q, want %q", got, want)
		}
	}
	if *update && !failed {
		must(t, os.WriteFile(path, []byte(strings.Join(out, "\n")+"\n"), 0o644))
	}
}

func goldenOpts(fields []string) map[string]string {
	m := map[string]string{}
	for _, f := range fields {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		} else {
			m[f] = ""
		}
	}
	return m
}

func goldenLabels(s string) map[string]string {
	if s == "" {
		return nil
	}
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, ":")
		m[k] = v
	}
	return m
}

func goldenApply(e *Evaluator, line string, f []string) error {
	return e.Update(func(tx *Tx) error {
		switch f[0] {
		case "principal":
			o := goldenOpts(f[2:])
			_, disabled := o["disabled"]
			return tx.PutPrincipal(Principal{Name: f[1], Org: o["org"], Project: o["project"], Disabled: disabled, Labels: goldenLabels(o["labels"])})
		case "group":
			o := goldenOpts(f[2:])
			if err := tx.PutGroup(Group{Name: f[1], Org: o["org"]}); err != nil {
				return err
			}
			if o["members"] != "" {
				for _, m := range strings.Split(o["members"], ",") {
					if err := tx.AddMember(f[1], m); err != nil {
						return err
					}
				}
			}
			return nil
		case "role":
			return tx.PutRole(Role{Name: f[1], Permissions: f[2:]})
		case "binding":
			if len(f) < 6 {
				return fmt.Errorf("binding needs id effect subject role scope")
			}
			b := Binding{ID: f[1], Subject: f[3], Role: f[4], Scope: f[5]}
			switch f[2] {
			case "allow":
				b.Effect = EffectAllow
			case "deny":
				b.Effect = EffectDeny
			}
			if _, cond, ok := strings.Cut(line, " if="); ok {
				b.Condition = cond
				line = strings.SplitN(line, " if=", 2)[0]
				f = strings.Fields(line)
			}
			o := goldenOpts(f[6:])
			if v := o["expires"]; v != "" {
				tm, err := time.Parse(time.RFC3339, v)
				if err != nil {
					return err
				}
				b.ExpireTime = tm
			}
			return tx.PutBinding(b)
		case "delete":
			switch f[1] {
			case "binding":
				return tx.DeleteBinding(f[2])
			case "principal":
				return tx.DeletePrincipal(f[2])
			case "group":
				return tx.DeleteGroup(f[2])
			case "role":
				return tx.DeleteRole(f[2])
			case "member":
				return tx.RemoveMember(f[2], f[3])
			}
		}
		return fmt.Errorf("unknown statement")
	})
}

func goldenCheck(e *Evaluator, f []string) string {
	if len(f) < 3 {
		return "bad check"
	}
	o := goldenOpts(f[3:])
	req := Request{Principal: f[0], Permission: f[1], Resource: f[2], SourceIP: o["ip"], ResourceLabels: goldenLabels(o["labels"])}
	if v := o["time"]; v != "" {
		tm, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return err.Error()
		}
		req.Time = tm
	}
	d, err := e.Authorize(context.Background(), req)
	switch {
	case err != nil:
		return "invalid"
	case d.Allowed:
		return "allow " + d.BindingID
	case d.BindingID != "":
		return "deny " + d.Reason.String() + " " + d.BindingID
	}
	return "deny " + d.Reason.String()
}

func goldenWhoCan(e *Evaluator, f []string) string {
	if len(f) < 2 {
		return "bad whocan"
	}
	res, err := e.WhoCan(context.Background(), WhoCanRequest{Permission: f[0], Resource: f[1]})
	if err != nil {
		return "invalid"
	}
	var parts []string
	for _, a := range res.Principals {
		parts = append(parts, a.Principal+"@"+a.Decision.BindingID)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

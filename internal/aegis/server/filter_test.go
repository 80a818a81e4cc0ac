package server

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

func TestFilterMatches(t *testing.T) {
	t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	alice := &aegisv1.User{Name: "orgs/a/users/alice", DisplayName: "Alice Liddell", Email: "alice@example.com",
		State: aegisv1.User_STATE_ACTIVE, Labels: map[string]string{"team": "red", "env": "prod"},
		FederatedIdentities: []*aegisv1.FederatedIdentity{{Issuer: "https://idp", Subject: "123"}},
		CreateTime:          timestamppb.New(t0)}
	for filter, want := range map[string]bool{
		`display_name = "Alice Liddell"`:                         true,
		`display_name="Alice*"`:                                  true,
		`display_name = Alice*`:                                  true,
		`display_name != "Alice*"`:                               false,
		`displayName = "Alice Liddell"`:                          true,
		`state = STATE_ACTIVE`:                                   true,
		`state = ACTIVE`:                                         true,
		`state != DISABLED`:                                      true,
		`labels:team`:                                            true,
		`labels:owner`:                                           false,
		`labels:*`:                                               true,
		`labels.team = red`:                                      true,
		`labels.team != red`:                                     false,
		`labels.owner != x`:                                      true,
		`labels.owner = x`:                                       false,
		`labels.team-a != red`:                                   true,
		`federated_identities.issuer = "https://idp"`:            true,
		`federated_identities.subject = "999"`:                   false,
		`create_time >= 2026-05-01T12:00:00Z`:                    true,
		`create_time > 2026-05-01T12:00:00Z`:                     false,
		`create_time < 2026-05-02T00:00:00+02:00`:                true,
		`last_login_time < 2030-01-01T00:00:00Z`:                 false,
		`last_login_time != 2030-01-01T00:00:00Z`:                true,
		`last_login_time:*`:                                      false,
		`email = "alice@example.com" AND labels.env = prod`:      true,
		`email = "alice@example.com" AND labels.env = staging`:   false,
		"email = \"a\\\"b\" AND state = ACTIVE":                  false,
		`  state = ACTIVE   AND   labels:team  `:                 true,
		`display_name = "with \"quotes\" and AND inside"`:        false,
		`email = alice@example.com AND create_time:*`:            true,
		`state = STATE_ACTIVE AND state = ACTIVE AND labels:env`: true,
	} {
		match, err := compileFilter[*aegisv1.User](filter, userFilter)
		if err != nil {
			t.Errorf("%s: %v", filter, err)
			continue
		}
		if got := match(alice); got != want {
			t.Errorf("%s: %v, want %v", filter, got, want)
		}
	}

	b := &aegisv1.Binding{Member: "orgs/a/users/x", Effect: aegisv1.Binding_EFFECT_DENY,
		Condition: &aegisv1.Condition{Expression: "true"}, Expiration: &aegisv1.Binding_ExpireTime{ExpireTime: timestamppb.New(t0)}}
	for filter, want := range map[string]bool{
		`effect = EFFECT_DENY`:                  true,
		`effect = ALLOW`:                        false,
		`condition:*`:                           true,
		`expire_time < 2027-01-01T00:00:00Z`:    true,
		`member = "orgs/a/users/x" AND role:*`:  false,
		`creator:*`:                             false,
		`member = "orgs/a/*" AND condition:*`:   true,
		`scope != "" AND effect != EFFECT_DENY`: false,
	} {
		match, err := compileFilter[*aegisv1.Binding](filter, bindingFilter)
		if err != nil {
			t.Errorf("%s: %v", filter, err)
			continue
		}
		if got := match(b); got != want {
			t.Errorf("%s: %v, want %v", filter, got, want)
		}
	}
	r := &aegisv1.Role{Permissions: []string{"a:b:c", "d:e:f"}}
	for filter, want := range map[string]bool{`permissions:"a:b:c"`: true, `permissions:"a:b:*"`: false, `permissions:*`: true} {
		match, err := compileFilter[*aegisv1.Role](filter, roleFilter)
		if err != nil || match(r) != want {
			t.Errorf("%s: %v, %v", filter, err, want)
		}
	}
	if m, err := compileFilter[*aegisv1.User]("  ", userFilter); m != nil || err != nil {
		t.Errorf("empty filter: %v", err)
	}
}

func TestFilterErrors(t *testing.T) {
	// Syntax errors are platform/filter's (its TestParseErrors); these are
	// the fields' own, plus one syntax error to see it pass through.
	for _, filter := range []string{
		`uid = x`, `state = x OR state = y`, `state < ACTIVE`,
		`display_name < "b"`, `create_time > tomorrow`, `labels = x`, `labels.a.b = x`,
		`federated_identities = x`, `federated_identities.nope = x`, `state = NOPE`, `email:"a" AND uid:*`,
		`members:x`,
	} {
		if _, err := compileFilter[*aegisv1.User](filter, userFilter); codeOf(err) != codes.InvalidArgument {
			t.Errorf("%q: %v, want InvalidArgument", filter, err)
		}
	}
	for _, filter := range []string{`condition = x`, `effect < EFFECT_DENY`, `permissions = x`} {
		if _, err := compileFilter[*aegisv1.Binding](filter, bindingFilter); codeOf(err) != codes.InvalidArgument {
			t.Errorf("%q: %v, want InvalidArgument", filter, err)
		}
	}
}

func FuzzFilter(f *testing.F) {
	for _, s := range []string{`display_name = "x*"`, `labels.a = b AND state != ACTIVE`, `create_time > 2026-01-01T00:00:00Z`,
		`federated_identities.issuer:"x"`, `"`, `a AND`, "labels:\x00", `x = "\`} {
		f.Add(s)
	}
	u := &aegisv1.User{DisplayName: "x", Labels: map[string]string{"a": "b"},
		FederatedIdentities: []*aegisv1.FederatedIdentity{{Issuer: "i", Subject: "s"}}}
	f.Fuzz(func(t *testing.T, filter string) {
		match, err := compileFilter[*aegisv1.User](filter, userFilter)
		if err != nil {
			if codeOf(err) != codes.InvalidArgument {
				t.Fatalf("%q: %v", filter, err)
			}
			return
		}
		if match != nil {
			match(u)
			match(&aegisv1.User{})
		}
	})
}

func TestMaskPlans(t *testing.T) {
	cur := &aegisv1.Binding{Name: "orgs/a/bindings/b", Member: "orgs/a/users/x", Role: "roles/R", Scope: "orgs/a",
		Effect: aegisv1.Binding_EFFECT_ALLOW, Description: "old",
		Expiration: &aegisv1.Binding_ExpireTime{ExpireTime: timestamppb.New(time.Unix(100, 0))}}
	apply := func(req *aegisv1.Binding, paths ...string) (*aegisv1.Binding, error) {
		t.Helper()
		m := mask(paths...)
		if len(paths) == 0 {
			m = nil
		}
		p, err := planMask(req, m, bindingMask)
		if err != nil {
			return nil, err
		}
		next := proto.Clone(cur).(*aegisv1.Binding)
		return next, p.apply(next)
	}
	// ttl replaces expire_time (the oneof is one field).
	got, err := apply(&aegisv1.Binding{Expiration: &aegisv1.Binding_Ttl{Ttl: durationpb.New(time.Minute)}}, "expire_time")
	if err != nil || got.GetTtl().AsDuration() != time.Minute || got.GetExpireTime() != nil || got.GetDescription() != "old" {
		t.Fatalf("ttl: %v, %v", got, err)
	}
	// No mask: set fields only; same immutable values pass.
	got, err = apply(&aegisv1.Binding{Description: "new", Member: cur.Member, Etag: "7", CreateTime: timestamppb.Now()})
	if err != nil || got.GetDescription() != "new" || got.GetExpireTime() == nil || got.GetCreateTime() != nil {
		t.Fatalf("no mask: %v, %v", got, err)
	}
	// Changed immutable field.
	if _, err := apply(&aegisv1.Binding{Role: "roles/Other"}); codeOf(toStatus(tenv.srv.lg, err).Err()) != codes.InvalidArgument {
		t.Fatalf("immutable: %v", err)
	}
	// "*" clears what the request leaves unset.
	got, err = apply(&aegisv1.Binding{}, "*")
	if err != nil || got.GetDescription() != "" || got.GetExpireTime() != nil || got.GetMember() != cur.Member {
		t.Fatalf("*: %v, %v", got, err)
	}
	for _, paths := range [][]string{{"nope"}, {"condition.expression"}, {"*", "description"}} {
		if _, err := apply(&aegisv1.Binding{}, paths...); codeOf(err) != codes.InvalidArgument {
			t.Errorf("%v: %v", paths, err)
		}
	}
}

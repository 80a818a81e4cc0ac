package policy

import (
	"context"
	"fmt"
	"net/netip"
	"time"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
)

// Conditions are CEL expressions of type bool. The variables are declared
// with qualified names, so that a misspelt field (request.tme) is a compile
// error at PutBinding time rather than a runtime error at decision time:
//
//	request.time        timestamp  time of the request
//	request.source_ip   string     caller address ("" if unknown), canonical form
//	request.permission  string     the permission being checked
//	resource.name       string     full resource name
//	resource.org        string     org id ("" for system)
//	resource.project    string     project id ("" above or outside a project)
//	resource.kind       string     innermost <kind> ("" for system, orgs, projects)
//	resource.id         string     innermost <id>
//	resource.labels     map(string, string)  labels supplied by the calling service
//	principal.name      string     the API name ("orgs/acme/users/alice") when the
//	                               principal has a ResourceName, else "users/alice"
//	principal.id        string     "alice"
//	principal.kind      string     "user" or "serviceAccount"
//	principal.org       string     owning org ("" for system users)
//	principal.project   string     owning project of a service account, else ""
//	principal.labels    map(string, string)  labels set on the principal
//	principal.groups    list(string)  groups of the principal, by ResourceName
//	                               ("orgs/acme/groups/oncall") or else "groups/<id>"
//
// Functions: the CEL standard library, optional types (m[?k].orValue(v)),
// and inCIDR(ip string, cidr string) bool, e.g.
// inCIDR(request.source_ip, "10.0.0.0/8"). A missing map key, a bad address
// or an exceeded cost limit is an evaluation error: a deny binding then
// applies and an allow binding does not.
var conditionVars = []cel.EnvOption{
	cel.Variable("request.time", cel.TimestampType),
	cel.Variable("request.source_ip", cel.StringType),
	cel.Variable("request.permission", cel.StringType),
	cel.Variable("resource.name", cel.StringType),
	cel.Variable("resource.org", cel.StringType),
	cel.Variable("resource.project", cel.StringType),
	cel.Variable("resource.kind", cel.StringType),
	cel.Variable("resource.id", cel.StringType),
	cel.Variable("resource.labels", cel.MapType(cel.StringType, cel.StringType)),
	cel.Variable("principal.name", cel.StringType),
	cel.Variable("principal.id", cel.StringType),
	cel.Variable("principal.kind", cel.StringType),
	cel.Variable("principal.org", cel.StringType),
	cel.Variable("principal.project", cel.StringType),
	cel.Variable("principal.labels", cel.MapType(cel.StringType, cel.StringType)),
	cel.Variable("principal.groups", cel.ListType(cel.StringType)),
}

// condEnv compiles conditions. A cel.Env and the programs it makes are safe
// for concurrent use.
type condEnv struct {
	env       *cel.Env
	costLimit uint64
	maxLen    int
}

func newCondEnv(costLimit uint64, maxLen int) (*condEnv, error) {
	opts := append([]cel.EnvOption{}, conditionVars...)
	opts = append(opts,
		cel.OptionalTypes(),
		cel.Function("inCIDR",
			cel.Overload("inCIDR_string_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(inCIDR))),
		// Deeply nested input must fail to parse, not blow the stack.
		cel.ParserRecursionLimit(64),
		cel.ParserExpressionSizeLimit(maxLen),
	)
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("cel environment: %w", err)
	}
	return &condEnv{env: env, costLimit: costLimit, maxLen: maxLen}, nil
}

func inCIDR(ipv, cidrv ref.Val) ref.Val {
	ip, ok1 := ipv.(types.String)
	cidr, ok2 := cidrv.(types.String)
	if !ok1 || !ok2 {
		return types.NewErr("inCIDR: want (string, string)")
	}
	addr, err := netip.ParseAddr(string(ip))
	if err != nil {
		return types.NewErr("inCIDR: bad address %q", truncate(string(ip)))
	}
	prefix, err := netip.ParsePrefix(string(cidr))
	if err != nil {
		return types.NewErr("inCIDR: bad CIDR %q", truncate(string(cidr)))
	}
	return types.Bool(prefix.Masked().Contains(addr.Unmap()))
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

// condition is a compiled condition, safe for concurrent use and shared by
// every binding with the same expression text.
type condition struct {
	expr string
	prg  cel.Program
}

// compile parses, type-checks and plans expr. It never panics: cel-go is
// robust against the inputs our fuzzers found, and a recover turns any
// remaining panic into an error rather than killing the watch loop.
func (ce *condEnv) compile(expr string) (c *condition, err error) {
	if len(expr) > ce.maxLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidCondition, ce.maxLen)
	}
	if !utf8.ValidString(expr) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrInvalidCondition)
	}
	defer func() {
		if r := recover(); r != nil {
			c, err = nil, fmt.Errorf("%w: compiler failure: %v", ErrInvalidCondition, r)
		}
	}()
	ast, iss := ce.env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCondition, iss.Err())
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("%w: must evaluate to bool, not %s", ErrInvalidCondition, ast.OutputType())
	}
	prg, err := ce.env.Program(ast,
		cel.CostLimit(ce.costLimit),
		// The cost limit bounds the work of any evaluation; checking the
		// context inside comprehensions additionally lets a cancelled
		// request stop early.
		cel.InterruptCheckFrequency(64),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCondition, err)
	}
	return &condition{expr: expr, prg: prg}, nil
}

// eval evaluates the condition. Any failure (runtime error, cost limit,
// cancelled context, non-bool result, panic) is returned as an error; the
// caller decides what failure means for the binding's effect.
func (c *condition) eval(ctx context.Context, act *activation) (result bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			result, err = false, fmt.Errorf("evaluation failure: %v", r)
		}
	}()
	out, _, err := c.prg.ContextEval(ctx, act)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("result is %s, not bool", out.Type())
	}
	return bool(b), nil
}

// activation resolves condition variables for one request. Map and list
// values are converted once per request, on first use.
type activation struct {
	now       time.Time
	sourceIP  string
	perm      string
	res       Resource
	resLabels map[string]string
	p         *principal
	groups    []string

	resLabelsVal ref.Val
	groupsVal    ref.Val
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "request.time":
		return types.Timestamp{Time: a.now}, true
	case "request.source_ip":
		return types.String(a.sourceIP), true
	case "request.permission":
		return types.String(a.perm), true
	case "resource.name":
		return types.String(a.res.name), true
	case "resource.org":
		return types.String(a.res.org), true
	case "resource.project":
		return types.String(a.res.project), true
	case "resource.kind":
		return types.String(a.res.kind), true
	case "resource.id":
		return types.String(a.res.id), true
	case "resource.labels":
		if a.resLabelsVal == nil {
			a.resLabelsVal = types.NewStringStringMap(types.DefaultTypeAdapter, a.resLabels)
		}
		return a.resLabelsVal, true
	case "principal.name":
		if a.p.ResourceName != "" {
			return types.String(a.p.ResourceName), true
		}
		return types.String(a.p.Name), true
	case "principal.id":
		return types.String(a.p.ref.ID), true
	case "principal.kind":
		return types.String(a.p.ref.Kind.String()), true
	case "principal.org":
		return types.String(a.p.Org), true
	case "principal.project":
		return types.String(a.p.Project), true
	case "principal.labels":
		return a.p.celLabels, true
	case "principal.groups":
		if a.groupsVal == nil {
			a.groupsVal = types.NewStringList(types.DefaultTypeAdapter, a.groups)
		}
		return a.groupsVal, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

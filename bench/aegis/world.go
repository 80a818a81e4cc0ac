package main

import (
	"fmt"
	"math/rand/v2"
)

// The synthetic installation is shaped like a multi-tenant cloud, the same
// shape as internal/aegis/policy's own benchmark (whose generator lives in
// a test file and so cannot be imported): per 1,000 bindings one org with
// 200 users, 20 service accounts (each owned by one of the org's projects),
// 20 projects of 50 VMs each, and 10 groups with every user in two of them.
const (
	bindingsPerOrg = 1000
	usersPerOrg    = 200
	sasPerOrg      = 20
	projectsPerOrg = 20
	groupsPerOrg   = 10
	vmsPerProject  = 50
	// systemAdmins is how many users of the first org hold SystemAdmin,
	// as operators of a real installation would.
	systemAdmins = 5
)

// subjKind is who a binding names or a request asks about.
type subjKind uint8

const (
	subjUser subjKind = iota
	subjSA
	subjGroup
)

// scopeKind is where a binding applies.
type scopeKind uint8

const (
	scopeSystem scopeKind = iota
	scopeOrg
	scopeProject
	scopeVM
)

// conditions are the CEL conditions of conditional bindings: one depends on
// the time of day, one on the caller's address, one on a resource label
// (false for the "prod" half of the requests), so conditional grants come
// out both ways.
var conditions = []string{
	`request.time.getHours() >= 6 && request.time.getHours() < 22`,
	`inCIDR(request.source_ip, "10.0.0.0/8")`,
	`resource.labels[?"env"].orValue("dev") != "prod"`,
}

// userRoles are the roles of ordinary grants.
var userRoles = []string{"ProjectViewer", "ProjectEditor", "flashdns.editor", "plasmavmc.operator", "flaredb.reader"}

// rolePerms are concrete permissions each role grants, used to build
// requests that a binding of that role allows.
var rolePerms = map[string][]string{
	"SystemAdmin":        {"plasmavmc:vms:delete", "aegis:bindings:create"},
	"OrgViewer":          {"plasmavmc:vms:get", "plasmavmc:vms:list", "flashdns:zones:list"},
	"ProjectViewer":      {"plasmavmc:vms:get", "plasmavmc:vms:list", "flaredb:databases:get"},
	"ProjectEditor":      {"plasmavmc:vms:start", "plasmavmc:vms:delete", "flashdns:records:update", "flaredb:data:write"},
	"flashdns.editor":    {"flashdns:records:update", "flashdns:records:create"},
	"plasmavmc.operator": {"plasmavmc:vms:start", "plasmavmc:vms:stop", "plasmavmc:vms:get"},
	"flaredb.reader":     {"flaredb:data:read", "flaredb:databases:list"},
}

// randomPerms are what the untargeted requests ask for.
var randomPerms = []string{"plasmavmc:vms:get", "plasmavmc:vms:start", "plasmavmc:vms:delete", "flashdns:records:update",
	"flaredb:data:read", "aegis:bindings:create", "plasmavmc:vms:list"}

// denyPerm is a permission of the role every deny binding denies
// (flashdns.editor).
const denyPerm = "flashdns:records:update"

// wBinding is one binding of the world, in indexes rather than names so
// that it can be rendered for the evaluator (policy names) and for the API
// (resource names).
type wBinding struct {
	id      int
	org     int
	subj    subjKind
	idx     int // user, service account or group index within the org
	scope   scopeKind
	project int
	vm      int
	role    string
	deny    bool
	cond    int // index into conditions, -1 for none
}

// reqClass is which decision path a request was built to exercise.
type reqClass uint8

const (
	classAllow  reqClass = iota // an unconditional allow binding of the principal applies
	classDeny                   // a deny binding of the principal applies
	classCond                   // a conditional allow binding of the principal applies if its condition holds
	classRandom                 // any principal, permission and resource: mostly default deny
)

// wRequest is one decision request of the world.
type wRequest struct {
	class   reqClass
	org     int
	subj    subjKind // subjUser or subjSA
	idx     int
	perm    string
	project int
	vm      int // -1: the request is about the project itself
	prod    bool
}

// world is a generated installation and a request mix against it.
type world struct {
	orgs     int
	bindings []wBinding
	reqs     []wRequest
}

// Request mix, in percent: requests built for the allow, deny and
// conditional paths, the rest random (which mostly end in default deny).
const (
	mixAllow = 50
	mixDeny  = 10
	mixCond  = 10
)

// genWorld builds a world of n bindings and nreq requests; the same n and
// seed always give the same world.
func genWorld(n, nreq int, seed uint64) *world {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	w := &world{orgs: max(1, n/bindingsPerOrg)}
	w.bindings = make([]wBinding, n)
	for i := range w.bindings {
		b := wBinding{id: i, org: (i / bindingsPerOrg) % w.orgs, subj: subjUser, idx: r.IntN(usersPerOrg),
			scope: scopeProject, project: r.IntN(projectsPerOrg), role: userRoles[r.IntN(len(userRoles))], cond: -1}
		switch x := r.IntN(100); {
		case x < 55:
		case x < 70:
			b.scope, b.vm, b.role = scopeVM, r.IntN(vmsPerProject), "plasmavmc.operator"
		case x < 80:
			b.subj, b.idx = subjGroup, r.IntN(groupsPerOrg)
		case x < 85:
			b.scope, b.role = scopeOrg, "OrgViewer"
		case x < 90:
			b.deny, b.role = true, "flashdns.editor"
		case x < 95:
			b.cond = r.IntN(len(conditions))
		default:
			// A service account gets rights in the project that owns it.
			b.subj, b.idx, b.role = subjSA, r.IntN(sasPerOrg), "ProjectEditor"
			b.project = saProject(b.idx)
		}
		if i < systemAdmins {
			b = wBinding{id: i, org: 0, subj: subjUser, idx: i, scope: scopeSystem, role: "SystemAdmin", cond: -1}
		}
		w.bindings[i] = b
	}

	var allows, denies, conds []int
	for i, b := range w.bindings {
		switch {
		case b.deny:
			denies = append(denies, i)
		case b.cond >= 0:
			conds = append(conds, i)
		default:
			allows = append(allows, i)
		}
	}
	w.reqs = make([]wRequest, nreq)
	for i := range w.reqs {
		x := r.IntN(100)
		var q wRequest
		switch {
		case x < mixAllow && len(allows) > 0:
			q = w.targeted(r, &w.bindings[allows[r.IntN(len(allows))]], classAllow)
		case x < mixAllow+mixDeny && len(denies) > 0:
			q = w.targeted(r, &w.bindings[denies[r.IntN(len(denies))]], classDeny)
		case x < mixAllow+mixDeny+mixCond && len(conds) > 0:
			q = w.targeted(r, &w.bindings[conds[r.IntN(len(conds))]], classCond)
		default:
			q = wRequest{class: classRandom, org: r.IntN(w.orgs), subj: subjUser, idx: r.IntN(usersPerOrg),
				perm: randomPerms[r.IntN(len(randomPerms))], project: r.IntN(projectsPerOrg), vm: -1}
			if r.IntN(2) == 0 {
				q.vm = r.IntN(vmsPerProject)
			}
			if r.IntN(10) == 0 {
				q.subj, q.idx = subjSA, r.IntN(sasPerOrg)
			}
		}
		q.prod = r.IntN(2) == 0
		w.reqs[i] = q
	}
	return w
}

// targeted builds a request that binding b bears on: by its principal (a
// member, for a group), for a permission of its role, on its scope or a
// resource below it.
func (w *world) targeted(r *rand.Rand, b *wBinding, class reqClass) wRequest {
	q := wRequest{class: class, org: b.org, subj: subjUser, idx: b.idx, project: b.project, vm: -1}
	switch b.subj {
	case subjSA:
		q.subj = subjSA
	case subjGroup:
		// Users u with u%groups == g are members of group g (see
		// memberships).
		q.idx = b.idx + groupsPerOrg*r.IntN(usersPerOrg/groupsPerOrg)
	}
	if class == classDeny {
		q.perm = denyPerm
	} else {
		perms := rolePerms[b.role]
		q.perm = perms[r.IntN(len(perms))]
	}
	switch b.scope {
	case scopeSystem:
		// Anywhere: a random org's project.
		q.org, q.project = r.IntN(w.orgs), r.IntN(projectsPerOrg)
	case scopeOrg:
		q.project = r.IntN(projectsPerOrg)
	case scopeVM:
		q.vm = b.vm
		return q
	}
	if r.IntN(2) == 0 {
		q.vm = r.IntN(vmsPerProject)
	}
	return q
}

// saProject is the project that owns service account s of an org.
func saProject(s int) int { return s % projectsPerOrg }

// memberships are the groups user u of an org belongs to.
func memberships(u int) [2]int { return [2]int{u % groupsPerOrg, (u + 3) % groupsPerOrg} }

// Names as the API spells them.

func apiOrg(o int) string        { return fmt.Sprintf("orgs/org-%d", o) }
func apiProject(o, p int) string { return fmt.Sprintf("orgs/org-%d/projects/p%d", o, p) }
func apiUser(o, u int) string    { return fmt.Sprintf("orgs/org-%d/users/u%d", o, u) }
func apiGroup(o, g int) string   { return fmt.Sprintf("orgs/org-%d/groups/g%d", o, g) }
func apiSA(o, s int) string {
	return fmt.Sprintf("orgs/org-%d/projects/p%d/serviceAccounts/sa%d", o, saProject(s), s)
}

// apiResource is the resource a request is about.
func apiResource(o, p, vm int) string {
	if vm < 0 {
		return apiProject(o, p)
	}
	return fmt.Sprintf("orgs/org-%d/projects/p%d/vms/vm%d", o, p, vm)
}

// apiSubject names a binding's member or a request's principal.
func apiSubject(o int, k subjKind, i int) string {
	switch k {
	case subjSA:
		return apiSA(o, i)
	case subjGroup:
		return apiGroup(o, i)
	}
	return apiUser(o, i)
}

// apiScope is where a binding applies.
func apiScope(b *wBinding) string {
	switch b.scope {
	case scopeSystem:
		return "system"
	case scopeOrg:
		return apiOrg(b.org)
	case scopeVM:
		return apiResource(b.org, b.project, b.vm)
	}
	return apiProject(b.org, b.project)
}

// apiContainer is the parent a binding is created under: the scope's
// project, org or system.
func apiContainer(b *wBinding) string {
	switch b.scope {
	case scopeSystem:
		return "system"
	case scopeOrg:
		return apiOrg(b.org)
	}
	return apiProject(b.org, b.project)
}

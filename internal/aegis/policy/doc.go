// Package policy is Aegis's policy decision point: a pure, in-memory
// evaluator that answers "may principal P use permission X on resource R?"
// from a mirror of the policy the server keeps in Chainfire. It does no
// I/O; the server feeds it watch events through Evaluator.Update.
//
// # Model
//
// Resources form a tree of names (see Resource):
//
//	system
//	└── orgs/<org>
//	    ├── orgs/<org>/<kind>/<id>                  org-level resources (users, groups, roles, …)
//	    └── orgs/<org>/projects/<project>
//	        └── orgs/<org>/projects/<project>/<kind>/<id>[/<kind>/<id>…]
//
// A scope is any name in the tree; a binding at a scope applies to the
// scope and everything below it.
//
// Principals are users ("users/<id>", belonging to an org, or to none for
// system operators) and service accounts ("serviceAccounts/<id>", belonging
// to an org and optionally a project). Groups ("groups/<id>") belong to an
// org and hold users and service accounts; they do not nest. Principal ids
// are unique per kind across the installation.
//
// Permissions are "service:resource:verb" (plasmavmc:vms:start). A role is a
// named set of permission patterns in which a segment may be "*". Built-in
// roles are listed in ROLES.md; custom roles are "orgs/<org>/roles/<id>" and
// may only be bound inside their org.
//
// A binding gives a subject (principal or group) a role at a scope, with
// effect allow or deny, an optional CEL condition (see condition.go for the
// variables) and an optional expiry.
//
// # Decision
//
//  1. A malformed request, an unknown principal or a disabled principal is
//     denied.
//  2. The candidate bindings are those of the principal and of the existing
//     groups it belongs to, at the resource and each of its ancestors, that
//     have not expired at the request time and whose role matches the
//     permission.
//  3. If any candidate deny applies, the request is denied. A deny whose
//     condition is true, fails to evaluate (error, cost limit, cancelled
//     context) or whose role is missing applies: deny fails closed.
//  4. Otherwise, if any candidate allow applies, the request is allowed. An
//     allow whose condition is false or fails to evaluate does not apply:
//     allow fails closed too.
//  5. Otherwise the request is denied (default deny).
//
// The Decision names the deciding binding, its role, scope and subject, or
// the reason for the denial, for the audit log.
//
// # Updates and concurrency
//
// The evaluator mirrors the store: each Tx method corresponds to one kind of
// watch event and never cascades (deleting a principal does not delete its
// bindings — those are separate records whose own delete events follow; in
// the meantime they are inert). Transactions are applied by one writer at a
// time and published as immutable snapshots with an atomic pointer swap, so
// decisions never block and never see half an update. See Evaluator for the
// rationale and store.go for the copy-on-write radix-sharded hash maps that
// keep a single update to a few KiB of copying rather than O(policy).
//
// # Indexes
//
// Principals and groups are stored as subject records keyed by name; a
// record holds the principal (or group), its memberships and its bindings
// grouped by scope. A decision therefore costs one hash lookup for the
// principal and one per group it belongs to, then a scan (or, for subjects
// bound at more than 8 scopes, a binary search per ancestor) of those
// records' scopes against the at most 7 ancestors of the resource —
// independent of the total number of bindings. Role permission matching is
// precompiled into at most eight hash lookups per role (one per wildcard
// shape present in the role). Reverse lookups and listings use B-trees
// ordered by (scope, binding id) and (group, member). The initial load and
// a re-list should each be one Update: every transaction clones the index
// leaves it touches once, so loading in many small transactions costs more.
package policy

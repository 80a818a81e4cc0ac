// Package store is Aegis's persistence in Chainfire (the etcd v3 API,
// through go.etcd.io/etcd/client/v3) and each replica's in-memory index of
// it. Reads, lookups for authentication and authorization decisions are
// served from the index and never touch Chainfire; writes are Chainfire
// transactions that return once the writer's own index has applied them,
// so a client reads its own writes from the same replica. Other replicas
// apply the change within the watch delay (milliseconds).
//
// # Records
//
// The records are the aegis.v1 API messages (Org, Project, User, Group,
// GroupMember, ServiceAccount, ServiceAccountKey, Role, Binding), stored
// proto-binary without their etag. Create methods take the parent and the
// id and fill the output-only fields (name, uid, times, a binding's
// creator and expire_time from ttl, a key's id); Update methods take a
// function that changes a copy of the current record and restore every
// output-only and immutable field afterwards, so the API layer applies its
// field mask in that function. Uids are 128 random bits, never reused.
// Every write validates the limits the .proto comments set, and bindings
// and roles through the evaluator too, so that every replica can load every
// stored record.
//
// An etag is the decimal Chainfire mod revision of the record's key; a
// group's etag is the larger of its record's and its membership-change
// key's (gver, below), so that adding or removing a member moves the
// group's etag without rewriting the group. Update and Delete take an etag:
// "" means unconditionally (the store retries on concurrent changes), any
// other value must be the current etag (ErrEtagMismatch). The comparison is
// part of the transaction, so it is exact even across replicas.
//
// Secret material is stored in separate keys and never returned by Get or
// List: user password hashes (argon2id PHC strings from package password)
// and service-account key secret hashes. The authentication lookups
// (UserForLogin, ServiceAccountKeyByClientID, …) return them.
//
// # Key layout
//
// Everything is under /aegis/. The watched, indexed part is /aegis/iam/;
// audit events and refresh tokens live outside it because every replica
// writes them, none needs to mirror them, and they are the bulk of the
// write traffic.
//
//	/aegis/iam/org/{org name}                          Org           e.g. /aegis/iam/org/orgs/acme
//	/aegis/iam/project/{project name}                  Project       …/project/orgs/acme/projects/web
//	/aegis/iam/user/{user name}                        User
//	/aegis/iam/group/{group name}                      Group
//	/aegis/iam/member/{group name}/{member name}       GroupMember
//	/aegis/iam/sa/{service account name}               ServiceAccount (org- or project-level)
//	/aegis/iam/sakey/{key name}                        ServiceAccountKey
//	/aegis/iam/role/{role name}                        custom Role
//	/aegis/iam/binding/{binding name}                  Binding       …/binding/system/bindings/b1
//	/aegis/iam/secret/password/{user name}             PHC string
//	/aegis/iam/secret/sakey/{key name}                 key secret hash
//	/aegis/iam/gver/{group name}                       time of the last membership change
//	/aegis/iam/ref/{target name}/by/{referrer name}    "" — a binding or group refers to target
//	/aegis/iam/unique/clientid/{client id}             key name
//	/aegis/iam/unique/federated/{issuer}/{subject}     user name (path-escaped)
//	/aegis/iam/unique/cert/{sha256|uri|dns}/{value}    service account name (path-escaped)
//	/aegis/iam/revoked/token/{jti}                     token expiry; leased until expiry + MaxLeeway
//	/aegis/iam/revoked/principal/{subject}             revocation time
//	/aegis/iam/signingkeys                             JSON []token.SealedKey
//	/aegis/refresh/{family}/{sha256 hex}               JSON token.RefreshRecord; leased to the family's end
//	/aegis/audit/{event id}                            AuditEvent; leased for the retention
//	/aegis/limits/login/{sha256 hex of org/username}   login bucket (Unix ns); leased until full again
//
// Each kind has its own prefix, and within it keys are the resource names,
// so the records of one kind under one parent are one key range: listing
// an org's projects reads only /aegis/iam/project/orgs/acme/projects/, and
// "the org has no projects" is one range comparison in a transaction. The
// ref keys let a transaction check that nothing refers to a record it
// deletes (a prefix comparison over /aegis/iam/ref/{name}/by/); the unique
// keys make federated identities, certificate identities and client ids
// unique across the installation. Leases are shared per time bucket (a
// minute for revocations and refresh families, an hour for audit events),
// so a busy installation holds a few dozen leases, not one per key.
//
// # Creates, parents and uniqueness
//
// A create is one transaction comparing that the record key does not exist
// (ErrAlreadyExists), that its parent and everything it refers to exist
// (ErrParentNotFound: the org of a project, the container, member and
// custom role of a binding, the member of a group) and that its unique
// keys are free (ErrAlreadyExists). Of concurrent creates of one name
// exactly one succeeds.
//
// # Deletes and cascades
//
//   - Users, groups and service accounts: deleting one always deletes what
//     exists only for it — password hash, keys and their secrets, unique
//     keys — and, as the API demands, the bindings that name it and its
//     group memberships, so a principal re-created under the same name
//     inherits nothing. Deleting a group keeps its members.
//   - Custom roles: refused with ErrFailedPrecondition while bindings use
//     the role, unless force, which deletes those bindings.
//   - Projects: refused while the project has service accounts or
//     bindings, unless force (then those go, with everything above).
//   - Orgs: refused while the org has projects, users, groups, service
//     accounts, custom roles or bindings, unless force (then all go, and
//     the system bindings naming the org's principals too). orgs/system
//     is never deleted.
//
// A delete is planned from the index and carried out in transactions of at
// most Options.MaxTxnOps operations: dependents first, each compared on
// its mod revision, then the record itself, compared on "no new dependent
// since the plan" (CreateRevision comparisons over the dependent prefixes
// and the ref prefix). Every transaction also compares the record's own
// revision, so a concurrent update or a stale etag stops the cascade. A
// large forced delete is therefore not atomic: if it fails midway
// (ErrConflict, Chainfire unavailable) some dependents are gone and the
// record is not; repeating it finishes the job.
//
// # Index, watch and evaluator
//
// Open reads /aegis/iam/ with one Range at a revision R (paged with
// WithRev(R)), builds the index, loads the evaluator in one transaction
// (Reset, then everything) and starts a watch from R+1. Each watch
// response is applied to the index, then to the evaluator as one
// transaction, then to the revocation list, and only then counted as
// applied (WaitRevision). A watch that falls behind a compaction is
// replaced by a full reload; a watch that ends otherwise resumes from the
// applied revision. WaitRevision asks Chainfire for progress notifications
// so that it also returns for revisions that changed nothing watched.
//
// The evaluator speaks its own names. Principals and groups are
// "users/{uid}", "serviceAccounts/{uid}" and "groups/{uid}" (the policy
// package wants installation-wide, never reused ids); built-in roles are
// bare ("ProjectEditor" for roles/ProjectEditor); a binding is
// "b{create revision}". PolicyPrincipal translates an API principal name
// for policy.Request; PrincipalName, BindingName and RoleName translate a
// policy.Decision back. Disabled users and service accounts, and every
// principal of a suspended org, are fed as disabled. Principal.Org is the
// org id (also "system" for operators).
//
// # Tokens
//
// KeyStore and RefreshStore implement the token package's interfaces;
// RevokeToken and RevokePrincipal store revocations that the watch feeds
// into Revocations() on every replica; OnSigningKeysChanged lets the server
// reload its token.Keyring when another replica rotates. Refresh records
// are read from Chainfire, not from the index. The store does not revoke
// tokens on its own (disabling or deleting a principal only makes the
// evaluator deny it): the server calls RevokePrincipal where the API says
// tokens stop working.
//
// # Audit
//
// AppendAudit stores an event under a time-ordered key; ListAuditEvents
// Ranges Chainfire directly (audit is not on the decision path), newest
// first by default, filtering by container, principal, resource and time,
// and reading at most a bounded number of events per page.
package store

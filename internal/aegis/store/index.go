package store

import (
	"encoding/hex"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/btree"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/protobuf/proto"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// entry is one API record in the index. msg is never modified once the
// entry is in the index: readers clone it.
type entry struct {
	key    string
	kind   kind
	name   string
	msg    proto.Message
	create int64
	mod    int64

	// What the record was fed to the evaluator as, so that its deletion
	// undoes exactly that even when what it referred to is gone: the
	// subject of a principal or group, the id of a binding, the group
	// subject of a membership. pol2 is the member (membership) or the
	// resolved subject (binding).
	pol, pol2 string
}

func lessEntry(a, b *entry) bool { return a.key < b.key }

// gver is the last membership change of a group: its key's mod revision
// takes part in the group's etag, its value is the group's update time.
type gver struct {
	mod  int64
	time time.Time
}

type fedID struct{ issuer, subject string }

// index is the in-memory mirror of the watched prefix. The watch goroutine
// is the only writer; readers take the read lock.
type index struct {
	mu sync.RWMutex

	rev  int64 // revision of the last applied change
	recs *btree.BTreeG[*entry]

	passwords  map[string]string // user name → PHC string
	keySecrets map[string]string // key name → secret hash
	gvers      map[string]gver   // group name → last membership change

	clientIDs map[string]string // client id → key name
	federated map[fedID]string  // federated identity → user name
	certs     map[string]string // certificate uniqueness key → service account name

	subjects      map[string]string // policy subject → record name
	subjectOfName map[string]string // record name → policy subject (asked on every call)
	bindingIDs    map[string]string // policy binding id → binding name

	// refs maps a principal, group or custom role to what refers to it:
	// binding names and (for principals) the groups it is a member of.
	refs map[string]map[string]struct{}
	// groupsOf maps a member to its groups; memberCount counts the
	// members of each group.
	groupsOf    map[string]map[string]struct{}
	memberCount map[string]int

	revokedTokens   map[string]time.Time // jti → token expiry
	revokedSubjects map[string]time.Time // subject → revoked at

	signingKeys    []byte
	signingKeysRev int64
}

func newIndex() *index {
	return &index{
		recs:            btree.NewG(32, lessEntry),
		passwords:       map[string]string{},
		keySecrets:      map[string]string{},
		gvers:           map[string]gver{},
		clientIDs:       map[string]string{},
		federated:       map[fedID]string{},
		certs:           map[string]string{},
		subjects:        map[string]string{},
		subjectOfName:   map[string]string{},
		bindingIDs:      map[string]string{},
		refs:            map[string]map[string]struct{}{},
		groupsOf:        map[string]map[string]struct{}{},
		memberCount:     map[string]int{},
		revokedTokens:   map[string]time.Time{},
		revokedSubjects: map[string]time.Time{},
	}
}

// replaceWith moves the contents of fresh (a freshly loaded index nobody
// else uses) into ix. The caller holds ix.mu.
func (ix *index) replaceWith(fresh *index) {
	ix.rev = fresh.rev
	ix.recs = fresh.recs
	ix.passwords = fresh.passwords
	ix.keySecrets = fresh.keySecrets
	ix.gvers = fresh.gvers
	ix.clientIDs = fresh.clientIDs
	ix.federated = fresh.federated
	ix.certs = fresh.certs
	ix.subjects = fresh.subjects
	ix.subjectOfName = fresh.subjectOfName
	ix.bindingIDs = fresh.bindingIDs
	ix.refs = fresh.refs
	ix.groupsOf = fresh.groupsOf
	ix.memberCount = fresh.memberCount
	ix.revokedTokens = fresh.revokedTokens
	ix.revokedSubjects = fresh.revokedSubjects
	ix.signingKeys = fresh.signingKeys
	ix.signingKeysRev = fresh.signingKeysRev
}

func (ix *index) get(key string) *entry {
	e, _ := ix.recs.Get(&entry{key: key})
	return e
}

func (ix *index) getName(k kind, name string) *entry { return ix.get(k.key(name)) }

// ascend calls fn for every entry whose key starts with prefix and is
// greater than after, in key order, until fn returns false.
func (ix *index) ascend(prefix, after string, fn func(*entry) bool) {
	start := prefix
	if after > start {
		start = after + "\x00"
	}
	ix.recs.AscendRange(&entry{key: start}, &entry{key: prefixEnd(prefix)}, fn)
}

func addSet(m map[string]map[string]struct{}, k, v string) {
	s := m[k]
	if s == nil {
		s = map[string]struct{}{}
		m[k] = s
	}
	s[v] = struct{}{}
}

func delSet(m map[string]map[string]struct{}, k, v string) {
	if s := m[k]; s != nil {
		delete(s, v)
		if len(s) == 0 {
			delete(m, k)
		}
	}
}

// groupEtag is max(group record, last membership change): a membership
// change moves the etag without rewriting the group record.
func (ix *index) groupEtagRev(e *entry) int64 {
	if g, ok := ix.gvers[e.name]; ok && g.mod > e.mod {
		return g.mod
	}
	return e.mod
}

// etagRev returns the revision an entry's etag stands for.
func (ix *index) etagRev(e *entry) int64 {
	if e.kind == kindGroup {
		return ix.groupEtagRev(e)
	}
	return e.mod
}

// apply applies one watched key change to the index and tells f what it
// means for the evaluator, the revocation list and the signing keys. f may
// be nil during a full load (the feed is then built from the whole index).
func (ix *index) apply(lg *slog.Logger, kv *mvccpb.KeyValue, del bool, f *feed) {
	key := string(kv.Key)
	if kv.ModRevision > ix.rev {
		ix.rev = kv.ModRevision
	}
	if k, name, ok := kindOfKey(key); ok {
		ix.applyRecord(lg, k, name, kv, del, f)
		return
	}
	val := string(kv.Value)
	switch {
	case strings.HasPrefix(key, secretPasswordPrefix):
		setOrDel(ix.passwords, key[len(secretPasswordPrefix):], val, del)
	case strings.HasPrefix(key, secretKeyPrefix):
		setOrDel(ix.keySecrets, key[len(secretKeyPrefix):], val, del)
	case strings.HasPrefix(key, gverPrefix):
		g := key[len(gverPrefix):]
		if del {
			delete(ix.gvers, g)
		} else {
			t, _ := time.Parse(time.RFC3339Nano, val)
			ix.gvers[g] = gver{mod: kv.ModRevision, time: t}
		}
	case strings.HasPrefix(key, revokedTokenPrefix):
		jti := key[len(revokedTokenPrefix):]
		if del {
			delete(ix.revokedTokens, jti)
			f.forgetToken(jti)
			return
		}
		exp, err := time.Parse(time.RFC3339Nano, val)
		if err != nil {
			lg.Warn("bad token revocation record", "key", key, "err", err)
			return
		}
		ix.revokedTokens[jti] = exp
		f.revokeToken(jti, exp)
	case strings.HasPrefix(key, revokedSubjectPrefix):
		sub := key[len(revokedSubjectPrefix):]
		if del {
			delete(ix.revokedSubjects, sub)
			f.forgetSubject(sub)
			return
		}
		at, err := time.Parse(time.RFC3339Nano, val)
		if err != nil {
			lg.Warn("bad principal revocation record", "key", key, "err", err)
			return
		}
		ix.revokedSubjects[sub] = at
		f.revokeSubject(sub, at)
	case key == signingKeysKey:
		if del {
			ix.signingKeys, ix.signingKeysRev = nil, 0
		} else {
			ix.signingKeys, ix.signingKeysRev = kv.Value, kv.ModRevision
		}
		f.keysChanged()
	}
	// ref/ and unique/ keys exist for transaction comparisons only; the
	// index derives the same information from the records.
}

func setOrDel(m map[string]string, k, v string, del bool) {
	if del {
		delete(m, k)
	} else {
		m[k] = v
	}
}

func newMsg(k kind) proto.Message {
	switch k {
	case kindOrg:
		return &aegisv1.Org{}
	case kindProject:
		return &aegisv1.Project{}
	case kindUser:
		return &aegisv1.User{}
	case kindGroup:
		return &aegisv1.Group{}
	case kindMember:
		return &aegisv1.GroupMember{}
	case kindServiceAccount:
		return &aegisv1.ServiceAccount{}
	case kindKey:
		return &aegisv1.ServiceAccountKey{}
	case kindRole:
		return &aegisv1.Role{}
	case kindBinding:
		return &aegisv1.Binding{}
	}
	panic("store: unknown kind")
}

func (ix *index) applyRecord(lg *slog.Logger, k kind, name string, kv *mvccpb.KeyValue, del bool, f *feed) {
	key := string(kv.Key)
	old := ix.get(key)
	if old != nil {
		ix.unlink(old)
	}
	if del {
		if old != nil {
			ix.recs.Delete(old)
			f.recordDeleted(ix, old)
		}
		return
	}
	msg := newMsg(k)
	if err := proto.Unmarshal(kv.Value, msg); err != nil {
		lg.Warn("skipping undecodable record", "key", key, "err", err)
		if old != nil {
			ix.recs.Delete(old)
			f.recordDeleted(ix, old)
		}
		return
	}
	e := &entry{key: key, kind: k, name: name, msg: msg, create: kv.CreateRevision, mod: kv.ModRevision}
	ix.recs.ReplaceOrInsert(e)
	ix.link(e)
	f.recordPut(ix, old, e)
}

// link adds the derived lookups of e.
func (ix *index) link(e *entry) {
	switch m := e.msg.(type) {
	case *aegisv1.User:
		ix.subjects["users/"+m.GetUid()] = e.name
		ix.subjectOfName[e.name] = "users/" + m.GetUid()
		for _, fi := range m.GetFederatedIdentities() {
			ix.federated[fedID{fi.GetIssuer(), fi.GetSubject()}] = e.name
		}
	case *aegisv1.ServiceAccount:
		ix.subjects["serviceAccounts/"+m.GetUid()] = e.name
		ix.subjectOfName[e.name] = "serviceAccounts/" + m.GetUid()
		for _, ci := range m.GetCertificateIdentities() {
			if k, ok := certKey(ci); ok {
				ix.certs[k] = e.name
			}
		}
	case *aegisv1.Group:
		ix.subjects["groups/"+m.GetUid()] = e.name
		ix.subjectOfName[e.name] = "groups/" + m.GetUid()
	case *aegisv1.ServiceAccountKey:
		ix.clientIDs[lastSegment(e.name)] = e.name
	case *aegisv1.GroupMember:
		if g, mem, ok := splitMemberName(e.name); ok {
			addSet(ix.groupsOf, mem, g)
			addSet(ix.refs, mem, g)
			ix.memberCount[g]++
		}
	case *aegisv1.Binding:
		ix.bindingIDs[bindingPolicyID(e)] = e.name
		addSet(ix.refs, m.GetMember(), e.name)
		if !strings.HasPrefix(m.GetRole(), "roles/") {
			addSet(ix.refs, m.GetRole(), e.name)
		}
	}
}

// unlink removes the derived lookups of e.
func (ix *index) unlink(e *entry) {
	switch m := e.msg.(type) {
	case *aegisv1.User:
		delete(ix.subjects, "users/"+m.GetUid())
		delete(ix.subjectOfName, e.name)
		for _, fi := range m.GetFederatedIdentities() {
			if k := (fedID{fi.GetIssuer(), fi.GetSubject()}); ix.federated[k] == e.name {
				delete(ix.federated, k)
			}
		}
	case *aegisv1.ServiceAccount:
		delete(ix.subjects, "serviceAccounts/"+m.GetUid())
		delete(ix.subjectOfName, e.name)
		for _, ci := range m.GetCertificateIdentities() {
			if k, ok := certKey(ci); ok && ix.certs[k] == e.name {
				delete(ix.certs, k)
			}
		}
	case *aegisv1.Group:
		delete(ix.subjects, "groups/"+m.GetUid())
		delete(ix.subjectOfName, e.name)
	case *aegisv1.ServiceAccountKey:
		delete(ix.clientIDs, lastSegment(e.name))
	case *aegisv1.GroupMember:
		if g, mem, ok := splitMemberName(e.name); ok {
			delSet(ix.groupsOf, mem, g)
			delSet(ix.refs, mem, g)
			if ix.memberCount[g]--; ix.memberCount[g] <= 0 {
				delete(ix.memberCount, g)
			}
		}
	case *aegisv1.Binding:
		delete(ix.bindingIDs, bindingPolicyID(e))
		delSet(ix.refs, m.GetMember(), e.name)
		delSet(ix.refs, m.GetRole(), e.name)
	}
}

func lastSegment(s string) string {
	return s[strings.LastIndexByte(s, '/')+1:]
}

// bindingPolicyID is the evaluator's id of a binding: "b" and the create
// revision of its record, which is unique, never reused and stable for the
// binding's lifetime (binding names can be longer than policy ids allow).
func bindingPolicyID(e *entry) string {
	return "b" + etagOf(e.create)
}

// fingerprint returns the lowercase hex SHA-256 form used in certificate
// identities.
func fingerprint(sum [32]byte) string { return hex.EncodeToString(sum[:]) }

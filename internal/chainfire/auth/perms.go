package auth

import (
	"bytes"
	"slices"

	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Key ranges follow etcd's conventions: an empty range end names one key,
// range end "\x00" means "to the end of the key space", anything else is the
// exclusive end. Internally an interval's empty end stands for +infinity
// ("affine" comparison, as etcd's interval tree), which no real key equals
// because the empty key is not a valid key.

// interval is [begin, end) with an empty end meaning +infinity.
type interval struct {
	begin, end []byte
}

// affineCmp orders byte strings with the empty one above every other.
func affineCmp(a, b []byte) int {
	switch {
	case len(a) == 0 && len(b) == 0:
		return 0
	case len(a) == 0:
		return 1
	case len(b) == 0:
		return -1
	}
	return bytes.Compare(a, b)
}

// pointInterval is the interval holding exactly key.
func pointInterval(key []byte) interval {
	return interval{begin: key, end: append(slices.Clip(key), 0)}
}

func isOpenEnded(end []byte) bool { return len(end) == 1 && end[0] == 0 }

// permInterval turns a granted permission into the interval it covers.
func permInterval(p *authpb.Permission) interval {
	switch {
	case len(p.RangeEnd) == 0:
		return pointInterval(p.Key)
	case isOpenEnded(p.RangeEnd):
		return interval{begin: p.Key}
	default:
		return interval{begin: p.Key, end: p.RangeEnd}
	}
}

// overlaps reports whether q and x share a key, with the comparison etcd's
// interval tree uses (so that inverted query ranges behave as in etcd).
func overlaps(q, x interval) bool {
	if affineCmp(q.begin, x.begin) < 0 && affineCmp(q.end, x.begin) <= 0 {
		return false // q is left of x
	}
	return affineCmp(q.begin, x.end) < 0 // otherwise q is right of x
}

// rangeSet is a list of intervals sorted by begin; overlapping ones stay
// separate, as in etcd's tree, and the checks merge them on the fly.
type rangeSet []interval

func (rs rangeSet) sort() {
	slices.SortStableFunc(rs, func(a, b interval) int { return affineCmp(a.begin, b.begin) })
}

// contains reports whether the union of the intervals covers all of q:
// the intervals overlapping q, in begin order, must be contiguous and reach
// from q's begin to q's end.
func (rs rangeSet) contains(q interval) bool {
	var minBegin, maxEnd []byte
	found := false
	for _, x := range rs {
		if !overlaps(q, x) {
			continue
		}
		if !found {
			minBegin, maxEnd, found = x.begin, x.end, true
			continue
		}
		if affineCmp(maxEnd, x.begin) < 0 {
			return false // a gap
		}
		if affineCmp(x.end, maxEnd) > 0 {
			maxEnd = x.end
		}
	}
	return found && affineCmp(maxEnd, q.end) >= 0 && affineCmp(minBegin, q.begin) <= 0
}

// intersects reports whether any interval shares a key with q.
func (rs rangeSet) intersects(q interval) bool {
	for _, x := range rs {
		if overlaps(q, x) {
			return true
		}
	}
	return false
}

// userPerms is the union of the permissions of a user's roles.
type userPerms struct {
	read, write rangeSet
}

// mergePerms computes every user's merged permissions, as etcd's range
// permission cache; it runs after each change, which is rare.
func mergePerms(st *state) map[string]*userPerms {
	out := make(map[string]*userPerms, len(st.users))
	for name, u := range st.users {
		p := &userPerms{}
		for _, rn := range u.Roles {
			r := st.roles[rn]
			if r == nil {
				continue
			}
			for _, perm := range r.KeyPermission {
				ivl := permInterval(perm)
				switch perm.PermType {
				case authpb.Permission_READWRITE:
					p.read = append(p.read, ivl)
					p.write = append(p.write, ivl)
				case authpb.Permission_READ:
					p.read = append(p.read, ivl)
				case authpb.Permission_WRITE:
					p.write = append(p.write, ivl)
				}
			}
		}
		p.read.sort()
		p.write.sort()
		out[name] = p
	}
	return out
}

// isValidPermissionRange is etcd's rule for granted ranges: a non-empty key,
// and a range end that is empty (one key), "\x00" (open end) or above the key.
func isValidPermissionRange(key, end []byte) bool {
	if len(key) == 0 {
		return false
	}
	if len(end) == 0 {
		return true
	}
	return affineCmp(key, end) < 0 || isOpenEnded(end)
}

func (s *Store) isOpPermitted(ai *AuthInfo, key, end []byte, write bool) error {
	st := s.load()
	if !st.enabled {
		return nil
	}
	// Revision 0 only comes with no credentials at all.
	if ai == nil || ai.Revision == 0 {
		return ErrUserEmpty
	}
	if ai.Revision < st.revision {
		return ErrAuthOldRevision
	}
	u := st.users[ai.Username]
	if u == nil {
		return ErrPermissionDenied
	}
	if hasRootRole(u) {
		return nil
	}
	p := st.perms[ai.Username]
	if p == nil {
		return ErrPermissionDenied
	}
	set := p.read
	if write {
		set = p.write
	}
	var ok bool
	if len(end) == 0 {
		ok = set.intersects(pointInterval(key))
	} else {
		q := interval{begin: key, end: end}
		if isOpenEnded(end) {
			q.end = nil
		}
		ok = set.contains(q)
	}
	if !ok {
		return ErrPermissionDenied
	}
	return nil
}

// IsRangePermitted checks that ai may read [key, end) (one key if end is
// empty, every key from key on if end is "\x00").
func (s *Store) IsRangePermitted(ai *AuthInfo, key, end []byte) error {
	return s.isOpPermitted(ai, key, end, false)
}

// IsPutPermitted checks that ai may write key.
func (s *Store) IsPutPermitted(ai *AuthInfo, key []byte) error {
	return s.isOpPermitted(ai, key, nil, true)
}

// IsDeleteRangePermitted checks that ai may delete [key, end).
func (s *Store) IsDeleteRangePermitted(ai *AuthInfo, key, end []byte) error {
	return s.isOpPermitted(ai, key, end, true)
}

// IsAdminPermitted checks that ai has the root role. Unlike key checks, it
// does not look at the revision of the credentials, as in etcd.
func (s *Store) IsAdminPermitted(ai *AuthInfo) error {
	st := s.load()
	if !st.enabled {
		return nil
	}
	if ai == nil || ai.Username == "" {
		return ErrUserEmpty
	}
	u := st.users[ai.Username]
	if u == nil {
		return ErrUserNotFound
	}
	if !hasRootRole(u) {
		return ErrPermissionDenied
	}
	return nil
}

// LeaseKeys looks up the keys attached to a lease; ok is false when the
// lease does not exist.
type LeaseKeys func(id int64) (keys []string, ok bool)

// CheckTxn checks a txn as etcd does: read permission for every compare,
// and every operation of both branches, nested txns included, whichever
// branch will run.
func (s *Store) CheckTxn(ai *AuthInfo, rt *pb.TxnRequest, leases LeaseKeys) error {
	for _, c := range rt.Compare {
		if err := s.IsRangePermitted(ai, c.Key, c.RangeEnd); err != nil {
			return err
		}
	}
	if err := s.checkOps(ai, rt.Success, leases); err != nil {
		return err
	}
	return s.checkOps(ai, rt.Failure, leases)
}

func (s *Store) checkOps(ai *AuthInfo, ops []*pb.RequestOp, leases LeaseKeys) error {
	for _, op := range ops {
		switch r := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			if r.RequestRange == nil {
				continue
			}
			if err := s.IsRangePermitted(ai, r.RequestRange.Key, r.RequestRange.RangeEnd); err != nil {
				return err
			}
		case *pb.RequestOp_RequestPut:
			if r.RequestPut == nil {
				continue
			}
			if err := s.CheckPut(ai, r.RequestPut, leases); err != nil {
				return err
			}
		case *pb.RequestOp_RequestDeleteRange:
			if r.RequestDeleteRange == nil {
				continue
			}
			if err := s.CheckDeleteRange(ai, r.RequestDeleteRange); err != nil {
				return err
			}
		case *pb.RequestOp_RequestTxn:
			if r.RequestTxn == nil {
				continue
			}
			if err := s.CheckTxn(ai, r.RequestTxn, leases); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckPut checks a put: write permission on the key; write permission on
// every key already attached to the lease it names (a user who could not
// revoke the lease may not attach to it); read permission if it asks for
// the previous value.
func (s *Store) CheckPut(ai *AuthInfo, r *pb.PutRequest, leases LeaseKeys) error {
	if err := s.IsPutPermitted(ai, r.Key); err != nil {
		return err
	}
	if err := s.CheckLeaseWrite(ai, r.Lease, leases); err != nil {
		return err
	}
	if r.PrevKv {
		return s.IsRangePermitted(ai, r.Key, nil)
	}
	return nil
}

// CheckDeleteRange checks a delete: read permission on the range if it asks
// for the previous values, then write permission on it, in etcd's order.
func (s *Store) CheckDeleteRange(ai *AuthInfo, r *pb.DeleteRangeRequest) error {
	if r.PrevKv {
		if err := s.IsRangePermitted(ai, r.Key, r.RangeEnd); err != nil {
			return err
		}
	}
	return s.IsDeleteRangePermitted(ai, r.Key, r.RangeEnd)
}

// CheckLeaseWrite checks that ai may write every key attached to lease id
// (revoking a lease deletes them); admins may, and a missing lease passes.
func (s *Store) CheckLeaseWrite(ai *AuthInfo, id int64, leases LeaseKeys) error {
	// Admins first: that saves copying the lease's keys.
	if leases == nil || s.IsAdminPermitted(ai) == nil {
		return nil
	}
	keys, ok := leases(id)
	if !ok {
		return nil
	}
	return s.CheckLeaseKeys(ai, keys, true)
}

// CheckLeaseKeys checks read (or write) permission on each of a lease's keys;
// admins pass without looking at the keys.
func (s *Store) CheckLeaseKeys(ai *AuthInfo, keys []string, write bool) error {
	if s.IsAdminPermitted(ai) == nil {
		return nil
	}
	for _, k := range keys {
		var err error
		if write {
			err = s.IsPutPermitted(ai, []byte(k))
		} else {
			err = s.IsRangePermitted(ai, []byte(k), nil)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

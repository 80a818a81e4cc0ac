package zone

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/miekg/dns"
)

// Zone file limits: imports come from tenants, so size and record count are
// bounded to keep one import from exhausting the server.
const (
	// MaxZoneFileSize is the largest zone file ParseZoneFile reads.
	MaxZoneFileSize = 32 << 20
	// MaxZoneRecords is the most records (SOA included) a zone file may hold.
	MaxZoneRecords = 500_000
	// DefaultTTL is the TTL ParseZoneFile gives records without one when the
	// caller passes 0 and the file has no $TTL.
	DefaultTTL = 3600
)

var errTooLarge = fmt.Errorf("zone file is larger than %d bytes", MaxZoneFileSize)

// limitReader fails with errTooLarge instead of reporting EOF, so that a
// truncated file is an error rather than a silently shorter zone.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte: exactly MaxZoneFileSize bytes is fine.
		var b [1]byte
		if n, _ := l.r.Read(b[:]); n > 0 {
			return 0, errTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// ParseZoneFile reads an RFC 1035 zone file with miekg/dns's ZoneParser.
//
//   - origin: the zone name; if empty, the file's $ORIGIN or else its SOA
//     owner decides. Relative names need an origin or an $ORIGIN line.
//   - defaultTTL: the TTL of records without one before any $TTL line or
//     explicit TTL; 0 means 3600, NSD's default (miekg alone would give some
//     such records TTL 0 and reject others).
//   - $INCLUDE is disabled (it would read server files); $GENERATE works,
//     within MaxZoneRecords.
//   - Exactly one SOA, at the apex; class IN only; only the supported types,
//     except that RRSIG, NSEC, NSEC3 and NSEC3PARAM records (a signed zone's)
//     are dropped.
//   - Identical records are merged (as NSD and BIND do); records of one set
//     with different TTLs get the smallest (RFC 2181 §5.2).
//
// Sets keep the order of their first record in the file. The result is
// checked with ValidateZone; every error wraps ErrInvalid, and an error
// about one record (syntax, class, type, validation) names the line of
// that record in the file ("invalid zone data: line 12: ...").
func ParseZoneFile(r io.Reader, origin string, defaultTTL uint32) (Data, error) {
	d, _, err := ParseZoneFileLines(r, origin, defaultTTL)
	return d, err
}

// Lines tells where the records of a parsed zone file are in the file
// (1-based line numbers), so that callers with rules of their own can name
// the line of a record they refuse.
type Lines struct {
	// SOA is the line of the SOA record.
	SOA int
	// sets[i][j] is the line of Data.Sets[i].RRs[j].
	sets [][]int32
	// ttl[i] is the line of the record that gave Data.Sets[i] its TTL
	// (the smallest of the set's).
	ttl []int32
}

// Line returns the line of record j of Data.Sets[i] (0 if out of range).
func (l Lines) Line(i, j int) int {
	if i < 0 || i >= len(l.sets) || j < 0 || j >= len(l.sets[i]) {
		return 0
	}
	return int(l.sets[i][j])
}

// TTLLine returns the line of the record that gave Data.Sets[i] its TTL:
// the first with the smallest TTL of the set, which ParseZoneFile gives to
// all its records (0 if out of range).
func (l Lines) TTLLine(i int) int {
	if i < 0 || i >= len(l.ttl) {
		return 0
	}
	return int(l.ttl[i])
}

// ParseZoneFileLines is ParseZoneFile, and also returns the line of every
// record.
func ParseZoneFileLines(r io.Reader, origin string, defaultTTL uint32) (Data, Lines, error) {
	if origin != "" {
		origin = Canonical(origin)
	}
	lr := &lineReader{r: bufio.NewReader(&limitReader{r: r, n: MaxZoneFileSize})}
	zp := dns.NewZoneParser(lr, origin, "")
	zp.SetIncludeAllowed(false)
	if defaultTTL == 0 {
		defaultTTL = DefaultTTL
	}
	zp.SetDefaultTTL(defaultTTL)

	var d Data
	var lines Lines
	type key struct {
		name string
		t    uint16
	}
	index := map[key]int{}
	count, line := 0, 0
	for {
		lr.start()
		rr, ok := zp.Next()
		if !ok {
			break
		}
		if l := lr.recordLine(); l > 0 {
			line = l
		} // else a further record of the same $GENERATE line
		count++
		if count > MaxZoneRecords {
			return Data{}, Lines{}, invalid("line %d: zone file has more than %d records", line, MaxZoneRecords)
		}
		h := rr.Header()
		h.Name = Canonical(h.Name)
		if h.Class != dns.ClassINET {
			return Data{}, Lines{}, invalid("line %d: %s %s: class %s, only IN is served", line, h.Name, dns.TypeToString[h.Rrtype], dns.ClassToString[h.Class])
		}
		if soa, ok := rr.(*dns.SOA); ok {
			if d.SOA != nil {
				return Data{}, Lines{}, invalid("line %d: zone file has more than one SOA (%s and %s)", line, d.SOA.Hdr.Name, h.Name)
			}
			d.SOA, lines.SOA = soa, line
			continue
		}
		if signatureTypes[h.Rrtype] {
			// Left over from a signed zone; FlashDNS does not sign.
			continue
		}
		if !supportedTypes[h.Rrtype] {
			return Data{}, Lines{}, invalid("line %d: %s: record type %s not supported (supported: A AAAA CNAME MX TXT SRV NS PTR CAA)", line, h.Name, typeString(h.Rrtype))
		}
		k := key{h.Name, h.Rrtype}
		i, ok := index[k]
		if !ok {
			i = len(d.Sets)
			index[k] = i
			d.Sets = append(d.Sets, RRSet{Name: h.Name, Type: h.Rrtype, TTL: h.Ttl})
			lines.sets = append(lines.sets, nil)
			lines.ttl = append(lines.ttl, int32(line))
		}
		set := &d.Sets[i]
		if h.Ttl < set.TTL {
			set.TTL = h.Ttl
			lines.ttl[i] = int32(line)
		}
		if !containsDuplicate(set.RRs, rr) {
			set.RRs = append(set.RRs, rr)
			lines.sets[i] = append(lines.sets[i], int32(line))
		}
	}
	if err := zp.Err(); err != nil {
		if errors.Is(err, errTooLarge) {
			return Data{}, Lines{}, fmt.Errorf("%w: %v", ErrInvalid, errTooLarge)
		}
		return Data{}, Lines{}, invalid("%s", parseErrorMessage(err))
	}
	if d.SOA == nil {
		return Data{}, Lines{}, invalid("zone file has no SOA record")
	}
	soaOwner := Canonical(d.SOA.Hdr.Name)
	if origin == "" {
		origin = soaOwner
	} else if soaOwner != origin {
		return Data{}, Lines{}, invalid("line %d: the SOA owner %s is not the zone apex %s", lines.SOA, soaOwner, origin)
	}
	d.Origin = origin
	for _, set := range d.Sets {
		for _, rr := range set.RRs {
			rr.Header().Ttl = set.TTL
		}
	}
	if err := ValidateZone(d); err != nil {
		return Data{}, Lines{}, locate(d, lines)
	}
	return d, lines, nil
}

// parseErrorMessage words a zone parser error as the others: "line 3: bad
// A A: \"x\"" instead of miekg/dns's "dns: bad A A: \"x\" at line: 3:18".
func parseErrorMessage(err error) string {
	var pe *dns.ParseError
	if !errors.As(err, &pe) {
		return "zone file: " + err.Error()
	}
	s := pe.Error()
	i := strings.LastIndex(s, " at line: ")
	if i < 0 {
		return "zone file: " + s
	}
	line, _, _ := strings.Cut(s[i+len(" at line: "):], ":")
	return "line " + line + ": " + strings.TrimPrefix(s[:i], "dns: ")
}

// locate finds the record that makes an invalid d invalid, and returns the
// error about it with its line. ValidateZone only names sets, and its
// rules are monotone (a zone's sets are invalid as soon as a prefix of
// them is), so the first set in file order that makes the zone invalid is
// where the shortest invalid prefix of the sets ends; within that set, the
// record is the first one invalid on its own, or else the one that makes a
// prefix of the set invalid (the second CNAME, the record over the limit).
// It costs a few validations of the whole zone; it runs only for a file
// that is refused anyway.
func locate(d Data, lines Lines) error {
	prefix := func(k int) Data {
		p := d
		p.Sets = d.Sets[:k]
		return p
	}
	if err := ValidateZone(prefix(0)); err != nil {
		return atLine(lines.SOA, err) // the SOA, the origin or the reverse settings
	}
	// The shortest invalid prefix is k sets long: prefix(lo) is valid,
	// prefix(hi) is not.
	lo, hi := 0, len(d.Sets)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		if ValidateZone(prefix(mid)) != nil {
			hi = mid
		} else {
			lo = mid
		}
	}
	err := ValidateZone(prefix(hi))
	i := hi - 1
	set := d.Sets[i]
	if ValidateSet(d.Origin, set) == nil {
		return atLine(lines.Line(i, 0), err) // a rule across sets: the whole set offends
	}
	one := set
	for j := range set.RRs {
		one.RRs = set.RRs[j : j+1]
		if ValidateSet(d.Origin, one) != nil {
			return atLine(lines.Line(i, j), err)
		}
	}
	lo, hi = 1, len(set.RRs)
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		one.RRs = set.RRs[:mid]
		if ValidateSet(d.Origin, one) != nil {
			hi = mid
		} else {
			lo = mid
		}
	}
	return atLine(lines.Line(i, hi-1), err)
}

// atLine puts "line N: " in front of the message of err, an ErrInvalid
// error; line 0 (unknown) leaves it as it is.
func atLine(line int, err error) error {
	if line <= 0 {
		return err
	}
	msg := strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")
	return fmt.Errorf("%w: line %d: %s", ErrInvalid, line, msg)
}

// lineReader feeds the zone parser byte by byte (it reads through an
// io.ByteReader when it gets one) and keeps what each record consumed, from
// which recordLine tells the record's line: the parser reports lines only
// in its syntax errors. The parser consumes a record up to and including
// the newline that ends it, and before it any blank, comment and directive
// lines.
type lineReader struct {
	r     *bufio.Reader
	lines int    // newlines consumed
	base  int    // lines before the current record's text
	buf   []byte // consumed since start
}

func (l *lineReader) Read(p []byte) (int, error) {
	// The parser reads through ReadByte; this keeps lines right for any
	// other use.
	n, err := l.r.Read(p)
	for _, b := range p[:n] {
		l.note(b)
	}
	return n, err
}

func (l *lineReader) ReadByte() (byte, error) {
	b, err := l.r.ReadByte()
	if err == nil {
		l.note(b)
	}
	return b, err
}

func (l *lineReader) note(b byte) {
	l.buf = append(l.buf, b)
	if b == '\n' {
		l.lines++
	}
}

// start marks the beginning of the next record.
func (l *lineReader) start() {
	l.base, l.buf = l.lines, l.buf[:0]
}

// recordLine returns the line where the record read since start begins,
// 0 when it consumed nothing (the further records of a $GENERATE line).
func (l *lineReader) recordLine() int {
	if len(l.buf) == 0 {
		return 0
	}
	line := l.base + 1
	rest := l.buf
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 || !skippedLine(rest[:i]) {
			break
		}
		line++
		rest = rest[i+1:]
	}
	return line
}

// skippedLine reports whether the parser reads a line without a record
// starting on it: blank, comment only, or a directive other than
// $GENERATE (whose records are its own).
func skippedLine(b []byte) bool {
	if len(b) > 0 && b[0] == '$' {
		return !hasPrefixFold(b, "$GENERATE")
	}
	t := bytes.TrimLeft(b, " \t\r")
	return len(t) == 0 || t[0] == ';'
}

func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && strings.EqualFold(string(b[:len(prefix)]), prefix)
}

func containsDuplicate(rrs []dns.RR, rr dns.RR) bool {
	for _, x := range rrs {
		if dns.IsDuplicate(x, rr) {
			return true
		}
	}
	return false
}

// signatureTypes are DNSSEC records that ParseZoneFile drops, so that the
// export of a signed zone from another server imports as the unsigned zone
// FlashDNS serves.
var signatureTypes = map[uint16]bool{
	dns.TypeRRSIG: true, dns.TypeNSEC: true, dns.TypeNSEC3: true, dns.TypeNSEC3PARAM: true,
}

func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

// WriteZoneFile writes s as an RFC 1035 zone file that ParseZoneFile and NSD
// read back: $ORIGIN and (when defaultTTL is not 0) $TTL lines, the SOA,
// the apex NS records, then every other record with absolute names in
// canonical name order (each name's sets in node order, which NSD keeps,
// so NSD answers ANY like FlashDNS: moving the apex NS set ahead changes
// no ANY answer, since the SOA precedes both). A reverse zone's PTR
// pattern is noted in a comment only; it is not zone-file data.
func WriteZoneFile(w io.Writer, s *Snapshot, defaultTTL uint32) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "; zone %s serial %d, %d records\n", s.origin, s.soa.Serial, s.records)
	if s.rev != nil {
		fmt.Fprintf(bw, "; reverse zone: PTR records are synthesised from %q for addresses without one\n", s.rev.pattern)
	}
	fmt.Fprintf(bw, "$ORIGIN %s\n", s.origin)
	if defaultTTL != 0 {
		fmt.Fprintf(bw, "$TTL %d\n", defaultTTL)
	}
	axfr := s.AXFR()
	body := axfr[1 : len(axfr)-1] // the closing SOA is for transfers only
	isApexNS := func(rr dns.RR) bool {
		return rr.Header().Rrtype == dns.TypeNS && strings.EqualFold(rr.Header().Name, s.origin)
	}
	write := func(rr dns.RR) error {
		if _, err := bw.WriteString(rr.String()); err != nil {
			return fmt.Errorf("write zone file: %w", err)
		}
		if err := bw.WriteByte('\n'); err != nil {
			return fmt.Errorf("write zone file: %w", err)
		}
		return nil
	}
	if err := write(axfr[0]); err != nil {
		return err
	}
	for _, rr := range body {
		if isApexNS(rr) {
			if err := write(rr); err != nil {
				return err
			}
		}
	}
	for _, rr := range body {
		if !isApexNS(rr) {
			if err := write(rr); err != nil {
				return err
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write zone file: %w", err)
	}
	return nil
}

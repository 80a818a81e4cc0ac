package store

import (
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	aegisv1 "github.com/photoncloud/photoncloud/api/aegis/v1"
)

// Limits from the aegis.v1 messages' comments. The store enforces them on
// every write so that no replica ever loads a record the API would not
// accept.
const (
	maxDisplayName     = 128
	maxDescription     = 1024
	maxLabels          = 64
	maxLabelValue      = 256
	maxEmail           = 320
	maxFederated       = 32 // not in the API; bounds the transaction size
	maxIssuer          = 1024
	maxFedSubject      = 255
	maxCertIdentities  = 10
	maxCertValue       = 1024
	maxPermissions     = 1000
	maxConditionExpr   = 4096
	maxConditionTitle  = 128
	maxKeysPerAccount  = 10
	maxPrincipalNameSz = 512
)

func checkText(field, s string, max int) error {
	if !utf8.ValidString(s) {
		return invalidf("%s is not valid UTF-8", field)
	}
	if n := utf8.RuneCountInString(s); n > max {
		return invalidf("%s has %d characters, more than %d", field, n, max)
	}
	return nil
}

// checkLabels enforces: at most 64; keys [a-z][a-z0-9_.-]{0,62}; values at
// most 256 characters.
func checkLabels(m map[string]string) error {
	if len(m) > maxLabels {
		return invalidf("%d labels, more than %d", len(m), maxLabels)
	}
	for k, v := range m {
		ok := len(k) >= 1 && len(k) <= 63 && isLower(k[0])
		for i := 1; ok && i < len(k); i++ {
			c := k[i]
			ok = isLower(c) || isDigit(c) || c == '_' || c == '.' || c == '-'
		}
		if !ok {
			return invalidf("label key %q must match [a-z][a-z0-9_.-]{0,62}", clip(k))
		}
		if err := checkText("label "+k, v, maxLabelValue); err != nil {
			return err
		}
	}
	return nil
}

func checkCommon(displayName, description string, labels map[string]string) error {
	if err := checkText("display_name", displayName, maxDisplayName); err != nil {
		return err
	}
	if err := checkText("description", description, maxDescription); err != nil {
		return err
	}
	return checkLabels(labels)
}

func validateOrg(o *aegisv1.Org) error {
	switch o.GetState() {
	case aegisv1.Org_STATE_ACTIVE, aegisv1.Org_STATE_SUSPENDED:
	default:
		return invalidf("unknown org state %v", o.GetState())
	}
	return checkCommon(o.GetDisplayName(), o.GetDescription(), o.GetLabels())
}

func validateProject(p *aegisv1.Project) error {
	return checkCommon(p.GetDisplayName(), p.GetDescription(), p.GetLabels())
}

func validateGroup(g *aegisv1.Group) error {
	return checkCommon(g.GetDisplayName(), g.GetDescription(), g.GetLabels())
}

func validateUser(u *aegisv1.User) error {
	switch u.GetState() {
	case aegisv1.User_STATE_ACTIVE, aegisv1.User_STATE_DISABLED:
	default:
		return invalidf("unknown user state %v", u.GetState())
	}
	if err := checkCommon(u.GetDisplayName(), "", u.GetLabels()); err != nil {
		return err
	}
	if err := checkText("email", u.GetEmail(), maxEmail); err != nil {
		return err
	}
	fis := u.GetFederatedIdentities()
	if len(fis) > maxFederated {
		return invalidf("%d federated identities, more than %d", len(fis), maxFederated)
	}
	seen := map[fedID]bool{}
	for _, fi := range fis {
		switch {
		case fi.GetIssuer() == "" || fi.GetSubject() == "":
			return invalidf("a federated identity needs an issuer and a subject")
		case len(fi.GetIssuer()) > maxIssuer || len(fi.GetSubject()) > maxFedSubject:
			return invalidf("federated identity issuer or subject too long")
		case !utf8.ValidString(fi.GetIssuer()) || !utf8.ValidString(fi.GetSubject()):
			return invalidf("federated identity is not valid UTF-8")
		}
		k := fedID{fi.GetIssuer(), fi.GetSubject()}
		if seen[k] {
			return invalidf("federated identity (%q, %q) listed twice", clip(k.issuer), clip(k.subject))
		}
		seen[k] = true
	}
	return nil
}

func validateServiceAccount(sa *aegisv1.ServiceAccount) error {
	switch sa.GetState() {
	case aegisv1.ServiceAccount_STATE_ACTIVE, aegisv1.ServiceAccount_STATE_DISABLED:
	default:
		return invalidf("unknown service account state %v", sa.GetState())
	}
	if err := checkCommon(sa.GetDisplayName(), sa.GetDescription(), sa.GetLabels()); err != nil {
		return err
	}
	cis := sa.GetCertificateIdentities()
	if len(cis) > maxCertIdentities {
		return invalidf("%d certificate identities, more than %d", len(cis), maxCertIdentities)
	}
	seen := map[string]bool{}
	for _, ci := range cis {
		if m, ok := ci.GetMatch().(*aegisv1.CertificateIdentity_Sha256Fingerprint); ok {
			// Accept upper case and colons; store the canonical form.
			fp := strings.ToLower(strings.ReplaceAll(m.Sha256Fingerprint, ":", ""))
			if len(fp) != 64 || strings.Trim(fp, "0123456789abcdef") != "" {
				return invalidf("sha256_fingerprint must be 64 hex digits")
			}
			m.Sha256Fingerprint = fp
		}
		var v string
		switch m := ci.GetMatch().(type) {
		case *aegisv1.CertificateIdentity_UriSan:
			v = m.UriSan
		case *aegisv1.CertificateIdentity_DnsSan:
			v = m.DnsSan
		case *aegisv1.CertificateIdentity_Sha256Fingerprint:
			v = m.Sha256Fingerprint
		}
		if v == "" {
			return invalidf("a certificate identity needs exactly one of sha256_fingerprint, uri_san, dns_san")
		}
		if len(v) > maxCertValue || !utf8.ValidString(v) {
			return invalidf("certificate identity value too long or not UTF-8")
		}
		k, _ := certKey(ci)
		if seen[k] {
			return invalidf("certificate identity %q listed twice", clip(v))
		}
		seen[k] = true
	}
	return nil
}

// clearEtag clears the fields that are never stored: the etag (the key's
// mod revision), a group's member count (counted from the memberships) and
// a key's secret.
func clearEtag(m proto.Message) {
	switch r := m.(type) {
	case *aegisv1.Org:
		r.Etag = ""
	case *aegisv1.Project:
		r.Etag = ""
	case *aegisv1.User:
		r.Etag = ""
	case *aegisv1.Group:
		r.Etag = ""
		r.MemberCount = 0
	case *aegisv1.ServiceAccount:
		r.Etag = ""
	case *aegisv1.ServiceAccountKey:
		r.Etag = ""
		r.ClientSecret = ""
	case *aegisv1.Role:
		r.Etag = ""
	case *aegisv1.Binding:
		r.Etag = ""
	}
}

// setEtag sets the etag of a record returned by a write.
func setEtag(m proto.Message, rev int64) {
	etag := etagOf(rev)
	switch r := m.(type) {
	case *aegisv1.Org:
		r.Etag = etag
	case *aegisv1.Project:
		r.Etag = etag
	case *aegisv1.User:
		r.Etag = etag
	case *aegisv1.Group:
		r.Etag = etag
	case *aegisv1.ServiceAccount:
		r.Etag = etag
	case *aegisv1.ServiceAccountKey:
		r.Etag = etag
	case *aegisv1.Role:
		r.Etag = etag
	case *aegisv1.Binding:
		r.Etag = etag
	}
}

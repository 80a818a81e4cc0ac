package server

import (
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// maskSpec names the fields of a resource an update may touch (common.proto,
// "Etags and updates"). Fields of the message that are in neither list
// (output-only fields, name, etag) are ignored in a mask.
type maskSpec struct {
	mutable   []protoreflect.Name
	immutable []protoreflect.Name
}

var (
	orgMask     = maskSpec{mutable: []protoreflect.Name{"display_name", "description", "labels", "state"}}
	projectMask = maskSpec{mutable: []protoreflect.Name{"display_name", "description", "labels"}}
	userMask    = maskSpec{mutable: []protoreflect.Name{"display_name", "email", "state", "labels", "federated_identities"}}
	groupMask   = maskSpec{mutable: []protoreflect.Name{"display_name", "description", "labels"}}
	saMask      = maskSpec{mutable: []protoreflect.Name{"display_name", "description", "state", "labels", "certificate_identities"}}
	roleMask    = maskSpec{mutable: []protoreflect.Name{"display_name", "description", "permissions"}}
	// expire_time and ttl are the two members of the oneof expiration:
	// either in the mask replaces the expiry with whichever the request
	// sets (ttl becomes expire_time in the store), or clears it.
	bindingMask = maskSpec{
		mutable:   []protoreflect.Name{"condition", "expire_time", "ttl", "description"},
		immutable: []protoreflect.Name{"member", "role", "scope", "effect"},
	}
)

// maskPlan is a validated update mask: the fields to copy from the request.
type maskPlan struct {
	src       protoreflect.Message
	set       []protoreflect.FieldDescriptor
	immutable []protoreflect.FieldDescriptor
}

// planMask validates mask against req (the resource sent with the update)
// and returns what to apply. A nil or empty mask means "the fields set in
// the request"; "*" means every mutable field. Unknown fields, nested
// paths and "*" mixed with other paths are INVALID_ARGUMENT.
func planMask(req proto.Message, mask *fieldmaskpb.FieldMask, spec maskSpec) (*maskPlan, error) {
	src := proto.Clone(req).ProtoReflect() // the store keeps what it gets; never share the request
	fields := src.Descriptor().Fields()
	var paths []string
	switch {
	case len(mask.GetPaths()) == 0:
		src.Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
			paths = append(paths, string(fd.Name()))
			return true
		})
	case slices.Contains(mask.GetPaths(), "*"):
		if len(mask.GetPaths()) != 1 {
			return nil, status.Error(codes.InvalidArgument, "update_mask: \"*\" must be the only path")
		}
		for _, n := range spec.mutable {
			paths = append(paths, string(n))
		}
	default:
		paths = mask.GetPaths()
	}
	p := &maskPlan{src: src}
	seen := map[protoreflect.Name]bool{}
	for _, path := range paths {
		if strings.Contains(path, ".") {
			return nil, status.Errorf(codes.InvalidArgument, "update_mask: nested path %q is not supported; name the whole field", clip(path))
		}
		fd := fields.ByName(protoreflect.Name(path))
		if fd == nil {
			fd = fields.ByJSONName(path)
		}
		if fd == nil {
			return nil, status.Errorf(codes.InvalidArgument, "update_mask: unknown field %q", clip(path))
		}
		if seen[fd.Name()] {
			continue
		}
		seen[fd.Name()] = true
		switch {
		case slices.Contains(spec.mutable, fd.Name()):
			p.set = append(p.set, fd)
		case slices.Contains(spec.immutable, fd.Name()):
			p.immutable = append(p.immutable, fd)
		}
		// Anything else is output-only, name or etag: ignored, so that
		// a resource read with Get can be sent back whole.
	}
	return p, nil
}

// apply copies the planned fields from the request into dst (a copy of the
// stored resource) after checking that immutable fields are unchanged.
func (p *maskPlan) apply(dst proto.Message) error {
	d := dst.ProtoReflect()
	for _, fd := range p.immutable {
		if !p.src.Get(fd).Equal(d.Get(fd)) {
			return invalidArg("field %s is immutable", fd.Name())
		}
	}
	for _, fd := range p.set {
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			// A oneof is replaced as a whole: whichever member the
			// request sets, or none.
			for i := 0; i < od.Fields().Len(); i++ {
				d.Clear(od.Fields().Get(i))
			}
			if set := p.src.WhichOneof(od); set != nil {
				d.Set(set, p.src.Get(set))
			}
			continue
		}
		if p.src.Has(fd) {
			d.Set(fd, p.src.Get(fd))
		} else {
			d.Clear(fd)
		}
	}
	return nil
}

// paths returns the names of the fields the update sets, for the audit
// event's update_mask.
func (p *maskPlan) fieldMask() *fieldmaskpb.FieldMask {
	m := &fieldmaskpb.FieldMask{}
	for _, fd := range p.set {
		m.Paths = append(m.Paths, string(fd.Name()))
	}
	return m
}

// Package etcdcompat is a differential test suite: it runs the same etcd v3
// operations against an embedded etcd v3.7.3 and an in-process Chainfire and
// compares the normalised responses, errors and watch events. It lives in its
// own module so that etcd's server never enters the product's dependency
// graph. See README.md for how to run it and how scenarios are written.
package etcdcompat

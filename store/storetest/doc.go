// Package storetest starts real etcd clusters of embedded members, secured
// with a throwaway cluster CA, for tests of everything that reads and writes
// the store. Members can be stopped and restarted to test failures.
package storetest

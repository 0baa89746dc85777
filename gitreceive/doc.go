// Package gitreceive makes `git push pier main` work, over SSH and over
// HTTP(S), the way Flynn's gitreceive did: the system git binary speaks the
// pack protocol (receive-pack for pushes, upload-pack for clones) in one bare
// repository per app, and the build runs inside that repository's
// pre-receive hook, so a failed build fails the push, leaves the branch
// where it was, and its output reaches the pusher as "remote:" lines while
// it happens. The hook is the same pier binary (`pier git-hook`, RunHook):
// it archives the pushed commit and hands it to the Receiver over a private
// unix socket, authenticated by a one-time token bound to the push, and the
// Receiver calls the Builder. The package knows nothing of builds or users
// beyond the two small interfaces, Builder and Auth, that the controller
// implements.
package gitreceive

// Package joblog keeps a job's output on the host: the per-job shim, which
// owns the container's stdout and stderr, writes it with a Writer, and the
// host agent reads it back with Read, Follow and Tail (for `pier host logs
// [-f]`, and to ship lines to the log aggregator). Output is cut into lines,
// each stamped with the time it completed, its stream and a sequence number
// that only grows, across both streams, across file rotations and across a
// restart of the writer, so a reader can resume exactly where it stopped and
// a shipper can say "I have everything up to n". Lines are appended as one
// JSON object each to size-capped files named by the first sequence number
// they hold; the oldest file is deleted once there are more than MaxFiles,
// which bounds the disk a job can use. The writer goes straight to the file,
// never to an unbounded buffer, and drops (and counts) lines it cannot write
// rather than stall the job; readers notice lines they will never see, lost
// that way or rotated away before they were read, as a gap in the sequence.
package joblog

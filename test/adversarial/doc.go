// Package adversarial holds end-to-end tests that attack a running realtime-service the way a
// hostile client on the open internet would: handshake floods past the admission caps,
// oversize and trickling messages before authentication, poison records in Kafka, and bursts
// of resumes. Each test builds the service once, starts it as a child process with its
// embedded Kafka broker on loopback ports and small caps, and checks that an authenticated
// user keeps receiving and that the node holds nothing for unauthenticated clients afterwards.
package adversarial

//go:build race

package main

// raceEnabled: the tests run with -race, so the service they build is built with -race too. It
// reuses the race-instrumented packages the other tests compiled, and runs the service under the
// race detector.
const raceEnabled = true

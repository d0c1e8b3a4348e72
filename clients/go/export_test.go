package client

import (
	"encoding/base64"
	"math/rand/v2"
	"strconv"
	"time"
)

var randFloat = rand.Float64

func b64url(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// jwtUntil is a token (unsigned: the fake servers do not check it) that expires at exp.
func jwtUntil(exp time.Time) string {
	return "eyJhbGciOiJIUzI1NiJ9." + b64url(`{"sub":"u","exp":`+strconv.FormatInt(exp.Unix(), 10)+`}`) + ".c2ln"
}

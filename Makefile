# realtime-service: developer and CI entry points. `make test` is the test command of README.md.
.PHONY: run test interop-deps lint screenshots

run: ## run the service (embedded Kafka broker when KAFKA_BROKERS is unset)
	go run ./cmd/realtime-service

interop-deps: ## install the independent Node clients the interop tests drive (pinned in test/interop) and the build and test tools of clients/js
	npm ci --prefix test/interop --no-audit --no-fund
	npm ci --prefix clients/js --no-audit --no-fund

test: interop-deps lint ## every test, with the race detector
	go test -race -count=1 -timeout 20m ./...

lint: ## formatting, vet, and go.mod/go.sum as go mod tidy leaves them
	@test -z "$$(gofmt -l .)" || (echo "gofmt would change:"; gofmt -l .; exit 1)
	go vet ./...
	go mod tidy -diff

screenshots: interop-deps ## regenerate docs/images/demo.png and status.png in headless Chromium (then commit them)
	UPDATE_SCREENSHOTS=1 go test -count=1 -run TestStatusPageInChromium ./cmd/realtime-service/

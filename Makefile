.PHONY: serve test demo
# Set up and serve the site with a local worker on the embedded defaults (ARGS="--demo" adds demo clips).
serve:
	./scripts/serve.sh $(ARGS)
# Set up and run the whole test suite (SQLite, then PostgreSQL; Redis-backed workers; Chromium).
test:
	./scripts/test.sh $(ARGS)
demo:
	./scripts/serve.sh --demo $(ARGS)

# Two commands do everything on a fresh machine: `make test` and `make book`. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

.PHONY: venv test book data clean
venv: $(VENV)/.installed

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q

# Main job: fetch the lab data if missing, execute every chapter (quick profile on CPU), build the HTML book.
# On your own model: make book MODEL=/models/sd-2-base DATASET=pets IMAGES=/data/pets [RUN=runs/pets] [DEVICE=cuda]
#   [N_IMAGES=300] [TRIALS=50]; also CHAPTERS="03 05", FORCE=1, NO_HTML=1, PAGES=executed, OUT=folder: every option
#   of `python -m dcanalysis.book` (its --help)
book: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(BIN)/python -m dcanalysis.book --profile $${PROFILE:-quick} \
	  $(if $(MODEL),--model $(MODEL) --dataset $(DATASET)) $(if $(IMAGES),--images $(IMAGES)) \
	  $(if $(RUN),--run $(RUN)) $(if $(DEVICE),--device $(DEVICE)) $(if $(N_IMAGES),--n-images $(N_IMAGES)) \
	  $(if $(TRIALS),--trials $(TRIALS)) $(if $(CHAPTERS),--chapters $(CHAPTERS)) $(if $(FORCE),--force) \
	  $(if $(NO_HTML),--no-html) $(if $(PAGES),--pages $(PAGES)) $(if $(OUT),--out $(OUT))

data: $(VENV)/.installed
	$(BIN)/python -m dcanalysis.evaluation.lab_datasets

clean:
	rm -rf book/_build

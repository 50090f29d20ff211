rule report_run:
    input:
        refined=finished_records(),
        stats=out("stats.json"),
        failed=out("failed.jsonl"),
        export=out("export/dataset.parquet"),
    output:
        run=report(
            out("report/run.html"),
            caption="../report/run.rst",
            category="1. Summary",
        ),
        summary=report(
            out("report/summary.html"),
            caption="../report/summary.rst",
            category="1. Summary",
        ),
        samples=report(
            out("report/samples.html"),
            caption="../report/samples.rst",
            category="3. Samples",
        ),
        funnel=report(
            out("report/funnel.png"),
            caption="../report/funnel.rst",
            category="2. Plots",
        ),
        qa_pairs=report(
            out("report/qa_pairs.png"),
            caption="../report/qa_pairs.rst",
            category="2. Plots",
        ),
        lengths=report(
            out("report/lengths.png"),
            caption="../report/lengths.rst",
            category="2. Plots",
        ),
        latency=report(
            out("report/latency.png"),
            caption="../report/latency.rst",
            category="2. Plots",
        ),
        failures=report(
            out("report/failures.html"),
            caption="../report/failures.rst",
            category="2. Plots",
        ),
        quality=report(
            out("report/quality.html"),
            caption="../report/quality.rst",
            category="4. Quality",
        ),
    log:
        out("logs/report_run.log"),
    conda:
        "../../envs/vqaflow.yaml"
    params:
        pipeline=config["pipeline"],
        columns=config["keys"],
        image_root=config["images"]["root"],
        config=public_config(config),
    script:
        "../../scripts/report_run.py"

# vqaflow: visual-question-answering data from a folder of images with VLMs.
# shard the input -> generate per shard -> refine per shard -> finish -> merge.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/shard.smk"


if config["backend"] == "vllm":

    include: "workflow/rules/generate_vllm.smk"

elif config["backend"] == "batch":

    include: "workflow/rules/generate_batch.smk"

else:

    include: "workflow/rules/generate.smk"


include: "workflow/rules/refine.smk"


if is_enabled("verify"):

    include: "workflow/rules/verify.smk"


if is_enabled("dedup_images"):

    include: "workflow/rules/dedup.smk"


if is_enabled("dedup_requests"):

    include: "workflow/rules/dedup_requests.smk"


include: "workflow/rules/finish.smk"
include: "workflow/rules/merge.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/preview.smk"
include: "workflow/rules/hub.smk"


rule all:
    default_target: True
    input:
        final_outputs(),

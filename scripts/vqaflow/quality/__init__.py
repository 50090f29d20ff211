"""Quality of the generated pairs: reading answers (:mod:`.parse` and the ``answer_*`` modules,
:mod:`.grounding`), the one text module they share with the rule filters (:mod:`.text`), the
rule filters (:mod:`.filters`), the judge (:mod:`.judge`) and image dedup (:mod:`.image_dedup`)."""

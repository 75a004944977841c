"""Recipes built on storyboard's public API, each runnable from the repo root:

    python -m pipelines.matrix examples/product_spot.yaml pipelines/data/products.csv \\
        --name-column name
    python -m pipelines.variants examples/product_spot.yaml --aspect 9:16 --aspect 1:1

They render several films from one storyboard with one shared cache, so a shot that
is the same in two films is generated (and paid for) once, also with ``--films N`` at
once (the films claim shared shots; see docs/reliability.md), and they check the whole
batch against ``--budget`` before anything is generated. They import only the public
API (``storyboard/__init__.py``).
"""

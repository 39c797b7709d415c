"""Bulk image indexing with Apache Beam over an exported SavedModel, and brute-force search of the index.

    python -m clip_edge.beam.embed_images --export DIR --input 'PATTERN' --output PREFIX [Beam options]
    python -m clip_edge.beam.search --index PREFIX --export DIR "a photo of a dog"

Both run the export's own signatures (encode_image, encode_text), never the Python model, so what is indexed
is what TF Serving serves. Needs the `beam` extra (apache-beam); see docs/beam.md. Nothing here is imported
by `import clip_edge`.
"""

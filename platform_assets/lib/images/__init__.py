"""Image code that embeddings and training shards share: decoding (`decode`; on the GPU,
`gpu_decode`), batched reading and decoding (`batches`), the integer augmentation (`augment`)
and the image sizes (`sizes`, read without torch)."""

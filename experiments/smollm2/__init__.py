"""SmolLM2-135M pruning study: uniform vs alpha allocation, magnitude vs Wanda, perplexity
on held-out Shakespeare."""

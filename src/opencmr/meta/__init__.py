"""Evidence synthesis: diagnostic-test-accuracy meta-analysis (univariate, bivariate) and pooling of continuous metrics."""

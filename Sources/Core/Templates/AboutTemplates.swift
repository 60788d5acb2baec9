// Templates: the template store (`TemplateStore`: the manifest, the defaults, compiled
// templates), variables and placeholders, and swift-mustache's errors in our words. Only
// mailfcgi links this library: emails are stored rendered.

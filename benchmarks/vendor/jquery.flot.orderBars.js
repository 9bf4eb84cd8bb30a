/* Offline stand-in for flot-orderbars (used by asv's dashboard for side-by-side
 * bars). Written for fastopt's offline dashboard (benchmarks/offline_dashboard.py):
 * it registers the plugin name so pages load; bars of several series are drawn
 * overlapping instead of side by side. With internet access the dashboard uses
 * the real plugin from its CDN. MIT licence, as fastopt. */
(function ($) {
    if (!$ || !$.plot) { return; }
    $.plot.plugins.push({
        init: function () {},
        options: { series: { bars: { order: null } } },
        name: "orderBars",
        version: "0-offline"
    });
})(window.jQuery);
